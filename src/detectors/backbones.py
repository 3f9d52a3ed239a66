"""timm backbones with pretrained weights that work offline.

``pretrained`` everywhere in dfbench is one of:

* ``False``: random initialisation (tests, demo profile);
* a path to a local weights file (``.safetensors``, ``.pth``, ``.bin``): the
  file is loaded through timm, which drops a classifier whose class count does
  not match, so an ImageNet checkpoint fits a detector's backbone;
* ``True``: timm's default weights for the model name. With a network, timm
  downloads them. Offline (no network, or ``HF_HUB_OFFLINE=1``), a copy in the
  Hugging Face or torch-hub cache is used if there is one; otherwise
  :class:`PretrainedWeightsUnavailable` is raised at once with instructions,
  instead of timm's retry loop of close to a minute.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import timm
import torch
from timm.models import get_pretrained_cfg

Pretrained = bool | str | Path


class PretrainedWeightsUnavailable(RuntimeError):
    """Raised when ``pretrained=True`` cannot be satisfied without a network."""


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _host_resolves(url: str) -> bool:
    host = urlparse(url).hostname
    if not host:
        return False
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def _cached_weights(model_name: str) -> Path | None:
    cfg = get_pretrained_cfg(model_name)
    if cfg is None:
        return None
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        for filename in filter(
            None, (cfg.hf_hub_filename, "model.safetensors", "pytorch_model.bin")
        ):
            found = try_to_load_from_cache(cfg.hf_hub_id, filename)
            if isinstance(found, str):
                return Path(found)
    if cfg.url:
        candidate = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(cfg.url).path).name
        if candidate.is_file():
            return candidate
    return None


def _download_source(model_name: str) -> str:
    cfg = get_pretrained_cfg(model_name)
    if cfg is None:
        raise PretrainedWeightsUnavailable(f"timm has no pretrained weights for {model_name!r}")
    if cfg.hf_hub_id:
        return f"https://huggingface.co/{cfg.hf_hub_id}"
    return cfg.url


def pretrained_overlay(model_name: str, pretrained: Pretrained) -> dict[str, Any] | None:
    """Translate ``pretrained`` into timm's ``pretrained_cfg_overlay`` (None: no weights)."""
    if pretrained is False or pretrained is None:
        return None
    if not isinstance(pretrained, bool):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"pretrained weights file for {model_name!r} not found: {path} "
                "(pass an existing .safetensors/.pth file, or pretrained=False)"
            )
        return {"file": str(path)}
    cached = _cached_weights(model_name)
    if cached is not None:
        return {"file": str(cached)}
    source = _download_source(model_name)
    if _env_flag("HF_HUB_OFFLINE") or not _host_resolves(source):
        raise PretrainedWeightsUnavailable(
            f"pretrained=True needs the weights of {model_name!r} from {source}, but this machine is "
            "offline (or HF_HUB_OFFLINE=1) and no cached copy exists. Download the file on a machine "
            "with a network (e.g. `huggingface-cli download <repo> model.safetensors` or the URL above), "
            "copy it here and pass its path instead of True, e.g. "
            "`--model.init_args.pretrained=/path/to/model.safetensors`."
        )
    return {}


def create_backbone(
    model_name: str, pretrained: Pretrained = False, **kwargs: Any
) -> torch.nn.Module:
    """``timm.create_model`` with dfbench's offline-safe ``pretrained`` semantics.

    ``kwargs`` go to timm unchanged (``num_classes``, ``features_only``,
    ``out_indices``, ``drop_rate``, ``in_chans`` ...).
    """
    overlay = pretrained_overlay(model_name, pretrained)
    if overlay is None:
        return timm.create_model(model_name, pretrained=False, **kwargs)
    return timm.create_model(model_name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)


def backbone_data_config(model_name: str) -> dict[str, Any]:
    """The input size, mean and std timm records for ``model_name``'s weights."""
    cfg = get_pretrained_cfg(model_name)
    if cfg is None:
        raise KeyError(f"timm knows no model {model_name!r}")
    return {
        "input_size": tuple(cfg.input_size[-2:]),
        "mean": tuple(cfg.mean),
        "std": tuple(cfg.std),
    }
