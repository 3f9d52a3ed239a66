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

import difflib
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import timm
import torch
from timm.models import get_pretrained_cfg
from torch import Tensor, nn

from src.errors import ConfigError, DFBenchError

Pretrained = bool | str | Path


class PretrainedWeightsUnavailable(DFBenchError, RuntimeError):
    """Raised when ``pretrained=True`` cannot be satisfied without a network."""


class UnknownBackbone(ConfigError):
    """A backbone name timm does not know (a typo, usually): the message names close ones."""


def check_backbone_name(model_name: str) -> None:
    """Fail with the closest timm names when ``model_name`` (with or without a weights tag) is unknown."""
    if timm.is_model(model_name):
        return
    close = difflib.get_close_matches(model_name, timm.list_models(), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(map(repr, close))}?" if close else "see timm.list_models()"
    raise UnknownBackbone(f"unknown backbone {model_name!r}; {hint}")


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
    check_backbone_name(model_name)
    overlay = pretrained_overlay(model_name, pretrained)
    if overlay is None:
        return timm.create_model(model_name, pretrained=False, **kwargs)
    return timm.create_model(model_name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)


def backbone_data_config(model_name: str) -> dict[str, Any]:
    """The input size, mean and std timm records for ``model_name``'s weights."""
    check_backbone_name(model_name)
    cfg = get_pretrained_cfg(model_name)
    if cfg is None:
        raise UnknownBackbone(f"timm records no input size for {model_name!r}")
    return {
        "input_size": tuple(cfg.input_size[-2:]),
        "mean": tuple(cfg.mean),
        "std": tuple(cfg.std),
    }


# ---------------------------------------------------------------- feature taps
@dataclass(frozen=True)
class Stage:
    """One named stage of a backbone: child modules of the timm model run in order.

    ``channels`` and ``reduction`` describe the stage's output (reduction = input
    size / output size), as timm's ``feature_info`` does.
    """

    name: str
    modules: tuple[str, ...]
    channels: int
    reduction: int


def _last_channels(modules: Sequence[nn.Module]) -> int:
    """Output channels of a stage: the width of its last batch norm (or conv)."""
    width = None
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, nn.BatchNorm2d):
                width = layer.num_features
            elif isinstance(layer, nn.Conv2d) and width is None:
                width = layer.out_channels
    if width is None:
        raise ValueError("a stage without a convolution or batch norm")
    return width


class StagedBackbone(nn.Module):
    """A timm backbone as an ordered list of named stages, to tap and to resume.

    A detector can run the network up to a stage, do its own work on that
    feature, and continue from there::

        backbone = staged_backbone("legacy_xception")
        embedding = backbone.run(images, until="block4")              # 728 x 19 x 19 at 299 px
        deep = backbone.run(embedding, after="block4", until="block7")
        taps = backbone.features(images, ["C3", "C4"])                # a dict by tap name

    Stage names (``names``) and aliases (``C1`` .. ``C6`` for the output at
    reduction 2**k) of the named families, whose taps the shipped methods use:

    * Xception (``legacy_xception``): ``stem`` (conv1 .. act2), ``block1`` ..
      ``block12``, ``conv3``, ``conv4`` (each with its BN and activation).
    * EfficientNet: ``stem``, ``blocks.0`` .. ``blocks.6``, ``head`` (conv head
      + BN + activation, C6, the feature LAA-Net reads beside C5).
    * ResNet: ``stem`` (conv1 .. maxpool), ``layer1`` .. ``layer4``.

    For them the timm model stays whole under ``.model``, so state-dict keys are
    timm's (``backbone.model.conv_stem.weight`` ...) and its unused classifier
    may stay. Any other timm backbone (HRNet, ConvNeXt, a ViT ...) is tapped
    through timm's ``features_only`` network, which is then ``.model``; its
    stages are timm's ``feature_info`` entries (:func:`feature_backbone`).

    Args:
        model: the network the stages' module paths point into.
        stages: the stages in the order they run.
        aliases: other names of stages (``{"C3": "blocks.2"}``).
        model_name: the timm name, for messages.
    """

    def __init__(
        self,
        model: nn.Module,
        stages: Sequence[Stage],
        aliases: dict[str, str] | None = None,
        model_name: str = "",
    ) -> None:
        super().__init__()
        self.model = model
        self.model_name = model_name or type(model).__name__
        self.stages = tuple(stages)
        self.aliases = dict(aliases or {})
        self._index = {stage.name: i for i, stage in enumerate(self.stages)}

    @property
    def names(self) -> list[str]:
        return [stage.name for stage in self.stages]

    def stage(self, name: str) -> Stage:
        """The stage called ``name`` (or aliased so)."""
        index = self._index.get(self.aliases.get(name, name))
        if index is None:
            taps = ", ".join([*self.names, *self.aliases])
            raise KeyError(f"backbone has no stage {name!r}; taps: {taps}")
        return self.stages[index]

    def channels(self, name: str) -> int:
        return self.stage(name).channels

    def reduction(self, name: str) -> int:
        return self.stage(name).reduction

    def _position(self, name: str | None, default: int) -> int:
        return default if name is None else self._index[self.stage(name).name]

    def _run_stage(self, stage: Stage, x: Tensor) -> Tensor:
        for path in stage.modules:
            x = self.model.get_submodule(path)(x)
        return x

    def run(self, x: Tensor, after: str | None = None, until: str | None = None) -> Tensor:
        """Run the stages after ``after`` (None: from the image) through ``until`` (None: all)."""
        first = self._position(after, -1) + 1
        last = self._position(until, len(self.stages) - 1)
        for stage in self.stages[first : last + 1]:
            x = self._run_stage(stage, x)
        return x

    def features(self, x: Tensor, taps: Sequence[str]) -> dict[str, Tensor]:
        """The outputs of the named stages (by the names asked for), stopping at the last one."""
        wanted: dict[int, list[str]] = {}
        for tap in taps:
            wanted.setdefault(self._index[self.stage(tap).name], []).append(tap)
        out: dict[str, Tensor] = {}
        for index, stage in enumerate(self.stages[: max(wanted) + 1]):
            x = self._run_stage(stage, x)
            for tap in wanted.get(index, ()):
                out[tap] = x
        return out

    def forward(self, x: Tensor) -> Tensor:
        return self.run(x)


class SinglePassBackbone(StagedBackbone):
    """Taps of a timm ``features_only`` network that computes them all in one pass.

    HRNet's parallel branches, a ViT's blocks (timm's ``forward_intermediates``)
    and networks timm taps with hooks cannot be cut into a chain of modules, so
    :meth:`run` answers ``until`` (the named feature) but not ``after``.
    """

    def _all_features(self, x: Tensor) -> list[Tensor]:
        out = self.model(x)
        return list(out.values()) if isinstance(out, dict) else list(out)

    def run(self, x: Tensor, after: str | None = None, until: str | None = None) -> Tensor:
        if after is not None:
            raise DFBenchError(
                f"backbone {self.model_name!r} computes its taps in one pass "
                f"({type(self.model).__name__}); it cannot resume after {after!r}"
            )
        last = self._position(until, len(self.stages) - 1)
        return self._all_features(x)[last]

    def features(self, x: Tensor, taps: Sequence[str]) -> dict[str, Tensor]:
        positions = {tap: self._index[self.stage(tap).name] for tap in taps}
        computed = self._all_features(x)
        return {tap: computed[position] for tap, position in positions.items()}


class NoFeatureTaps(ValueError):
    """timm cannot give intermediate features (``features_only``) for this backbone."""


# timm modules whose models keep the stage names and aliases the shipped methods tap
# (and whose state-dict keys their checkpoints and the LAA-Net importer hold).
_NAMED_FAMILIES = ("timm.models.xception", "timm.models.efficientnet", "timm.models.resnet")


def _family_plan(
    model: nn.Module,
) -> tuple[list[tuple[str, tuple[str, ...], int]], dict[str, str]] | None:
    """(stage name, child modules, reduction) per stage and the C-level aliases, or None.

    The named stages of the Xception, EfficientNet and ResNet families on the
    whole timm model; reductions come from timm's ``feature_info`` where it
    names the stage.
    """
    children = dict(model.named_children())
    if "block12" in children and "conv4" in children:  # timm's legacy_xception
        plan = [("stem", ("conv1", "bn1", "act1", "conv2", "bn2", "act2"), 2)]
        plan += [
            (f"block{i}", (f"block{i}",), 4 if i == 1 else 8 if i == 2 else 16) for i in (1, 2, 3)
        ]
        plan += [(f"block{i}", (f"block{i}",), 16) for i in range(4, 12)]
        plan += [("block12", ("block12",), 32)]
        plan += [("conv3", ("conv3", "bn3", "act3"), 32), ("conv4", ("conv4", "bn4", "act4"), 32)]
        aliases = {"C1": "stem", "C2": "block1", "C3": "block2", "C4": "block11", "C5": "conv4"}
        return plan, aliases
    if "conv_stem" in children and "blocks" in children and "conv_head" in children:
        reductions = {info["module"]: int(info["reduction"]) for info in model.feature_info}
        plan = [("stem", ("conv_stem", "bn1"), 2)]
        aliases = {}
        reduction = 2
        for i in range(len(model.blocks)):
            name = f"blocks.{i}"
            reduction = reductions.get(name, reduction)
            plan.append((name, (name,), reduction))
        # The reduction of a stage without a feature_info entry is the next tapped one's.
        for k in range(len(plan) - 2, 0, -1):
            name = plan[k][0]
            if name not in reductions:
                plan[k] = (name, plan[k][1], plan[k + 1][2])
        for name, reduction in reductions.items():
            aliases[f"C{reduction.bit_length() - 1}"] = name
        plan.append(("head", ("conv_head", "bn2"), plan[-1][2]))
        aliases["C6"] = "head"
        return plan, aliases
    if all(f"layer{i}" in children for i in (1, 2, 3, 4)) and "conv1" in children:
        plan = [("stem", ("conv1", "bn1", "act1", "maxpool"), 4)]
        plan += [
            (f"layer{i}", (f"layer{i}",), r)
            for i, r in zip((1, 2, 3, 4), (4, 8, 16, 32), strict=True)
        ]
        aliases = {"C2": "layer1", "C3": "layer2", "C4": "layer3", "C5": "layer4"}
        return plan, aliases
    return None


def _in_named_family(model_name: str) -> bool:
    arch = timm.models.get_arch_name(model_name)
    return timm.models.model_entrypoint(arch).__module__ in _NAMED_FAMILIES


def _reduction_aliases(stages: Sequence[Stage]) -> dict[str, str]:
    """``C<k>`` for the last stage at reduction 2**k (a ViT's blocks share one: the last block)."""
    return {
        f"C{stage.reduction.bit_length() - 1}": stage.name
        for stage in stages
        if stage.reduction > 0 and stage.reduction & (stage.reduction - 1) == 0
    }


def feature_backbone(
    model_name: str, pretrained: Pretrained = False, **kwargs: Any
) -> StagedBackbone:
    """Any timm backbone as taps, from timm's ``features_only`` network and its ``feature_info``.

    Stage names are timm's module names (``stages.0``, ``stage2``, ``blocks.11``
    ...), channels and reductions are timm's, and ``C<k>`` aliases the last
    stage at reduction 2**k. Which features exist is timm's default for the
    model (every stage of a CNN, the last three blocks of a ViT); ``out_indices``
    in ``kwargs`` chooses others. When timm's network is a chain of modules
    (its ``FeatureDictNet``/``FeatureListNet``) the stages resume like the
    named families'; otherwise it is a :class:`SinglePassBackbone`.

    Raises:
        NoFeatureTaps: timm has no ``features_only`` network for ``model_name``.
    """
    check_backbone_name(model_name)
    pretrained_overlay(model_name, pretrained)  # a bad weights argument fails as itself
    try:
        net = create_backbone(model_name, pretrained, features_only=True, **kwargs)
    except (AssertionError, AttributeError, NotImplementedError, RuntimeError) as error:
        raise NoFeatureTaps(
            f"timm gives no feature taps (features_only) for backbone {model_name!r}: "
            f"{error or type(error).__name__}"
        ) from error
    info = net.feature_info
    names, channels, reductions = info.module_name(), info.channels(), info.reduction()
    if isinstance(net, timm.models.FeatureDictNet):
        stages, pending = [], []
        for key in net:
            pending.append(key)
            if key in net.return_layers:
                k = len(stages)
                stages.append(Stage(names[k], tuple(pending), channels[k], reductions[k]))
                pending = []
        return StagedBackbone(net, stages, _reduction_aliases(stages), model_name)
    stages = [
        Stage(name, (), width, reduction)
        for name, width, reduction in zip(names, channels, reductions, strict=True)
    ]
    return SinglePassBackbone(net, stages, _reduction_aliases(stages), model_name)


def staged_backbone(
    model_name: str, pretrained: Pretrained = False, **kwargs: Any
) -> StagedBackbone:
    """:func:`create_backbone` as a :class:`StagedBackbone` (named taps, resumable stages).

    The Xception, EfficientNet and ResNet families keep their named stages on
    the whole timm model (see :class:`StagedBackbone`); any other backbone is
    tapped through timm's ``feature_info`` (:func:`feature_backbone`).
    """
    check_backbone_name(model_name)
    if _in_named_family(model_name):
        model = create_backbone(model_name, pretrained, **kwargs)
        found = _family_plan(model)
        if found is not None:
            plan, aliases = found
            stages = [
                Stage(
                    name,
                    modules,
                    _last_channels([model.get_submodule(m) for m in modules]),
                    reduction,
                )
                for name, modules, reduction in plan
            ]
            return StagedBackbone(model, stages, aliases, model_name)
    return feature_backbone(model_name, pretrained, **kwargs)
