"""What every dfbench DataModule shares: the input contract, device-side
normalisation, data loaders, and the names and video keys of its sets.

The input contract comes from the detector being trained or tested
(``trainer.lightning_module.input_contract``), so one data configuration
serves every detector. Outside a Trainer (or to force a size), pass
``input_size``/``mean``/``std`` explicitly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from src.contracts import InputContract, as_size
from src.data.pseudo import pairs_collate

DEFAULT_CONTRACT = InputContract(input_size=(256, 256))


def quiet_worker(worker_id: int) -> None:
    """Keep each loader worker on one thread: N workers x M threads oversubscribes the CPU."""
    cv2.setNumThreads(0)
    torch.set_num_threads(1)


def batch_item(
    image: np.ndarray,
    mask: np.ndarray,
    label: int,
    has_mask: bool,
    sample: int,
    video: int,
    frame: int,
) -> dict[str, torch.Tensor]:
    """One item of the batch contract from an RGB uint8 image (H, W, 3) and a uint8 mask (H, W)."""
    return {
        "image": torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1),
        "label": torch.tensor(float(label)),
        "mask": torch.from_numpy(np.ascontiguousarray(mask))[None],
        "has_mask": torch.tensor(has_mask),
        "sample_idx": torch.tensor(sample, dtype=torch.long),
        "video_idx": torch.tensor(video, dtype=torch.long),
        "frame_idx": torch.tensor(frame, dtype=torch.long),
    }


class DeepfakeDataModuleBase(pl.LightningDataModule):
    """Base class of dfbench DataModules.

    Subclasses build datasets in ``setup`` whose items follow the batch
    contract (:mod:`src.contracts`) with uint8 ``image``/``mask``, and fill
    ``self.sets[stage]``: a list of ``(name, dataset, video_keys)`` per stage,
    where ``video_keys[video_idx]`` is the video's unique string key.

    Args:
        batch_size: training batch size.
        eval_batch_size: validation/test/predict batch size (default: ``batch_size``).
        num_workers: loader worker processes (0 = load in the main process).
        input_size, mean, std: override the detector's input contract.
        pin_memory: pin host memory (default: when CUDA is available).
    """

    def __init__(
        self,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        input_size: int | tuple[int, int] | None = None,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        pin_memory: bool | None = None,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self._contract_override = {
            key: value
            for key, value in (
                ("input_size", None if input_size is None else as_size(input_size)),
                ("mean", None if mean is None else tuple(mean)),
                ("std", None if std is None else tuple(std)),
            )
            if value is not None
        }
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.sets: dict[str, list[tuple[str, Dataset, Sequence[str]]]] = {}

    # ------------------------------------------------------------- contract
    @property
    def contract(self) -> InputContract:
        trainer = getattr(self, "trainer", None)
        module = getattr(trainer, "lightning_module", None) if trainer is not None else None
        base = getattr(module, "input_contract", None) or DEFAULT_CONTRACT
        return InputContract(
            input_size=self._contract_override.get("input_size", base.input_size),
            mean=self._contract_override.get("mean", base.mean),
            std=self._contract_override.get("std", base.std),
        )

    def normalise(self, batch: dict[str, Any]) -> dict[str, Any]:
        """uint8 ``image``/``mask`` -> float; the image normalised by the contract's mean/std.

        Float images are taken as already normalised and left alone.
        """
        image = batch.get("image")
        if isinstance(image, Tensor) and image.dtype == torch.uint8:
            contract = self.contract
            mean = torch.tensor(contract.mean, device=image.device).view(1, 3, 1, 1) * 255
            std = torch.tensor(contract.std, device=image.device).view(1, 3, 1, 1) * 255
            batch["image"] = (image.float() - mean) / std
        mask = batch.get("mask")
        if isinstance(mask, Tensor) and mask.dtype == torch.uint8:
            batch["mask"] = mask.float() / 255
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return self.normalise(batch) if isinstance(batch, dict) else batch

    # ------------------------------------------------------------ the sets
    def set_names(self, stage: str) -> list[str]:
        return [name for name, _, _ in self.sets.get(stage, [])]

    @property
    def test_set_names(self) -> list[str]:
        return self.set_names("test")

    @property
    def predict_set_names(self) -> list[str]:
        return self.set_names("predict")

    def video_keys(self, stage: str, index: int = 0) -> Sequence[str]:
        """Unique string key of every video of the ``index``-th set of ``stage``."""
        return self.sets[stage][index][2]

    # -------------------------------------------------------------- loaders
    def _loader(
        self,
        dataset: Dataset,
        batch_size: int,
        shuffle: bool,
        drop_last: bool = False,
        collate_fn: Callable | None = None,
        sampler: Sampler | None = None,
    ) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle if sampler is None else False,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
            worker_init_fn=quiet_worker if self.num_workers > 0 else None,
            collate_fn=collate_fn,
        )

    def _eval_loaders(self, stage: str) -> list[DataLoader]:
        if stage not in self.sets:
            raise RuntimeError(f"{type(self).__name__} has no {stage} sets; was setup() called?")
        return [
            self._loader(ds, self.eval_batch_size, shuffle=False, collate_fn=pairs_collate(ds))
            for _, ds, _ in self.sets[stage]
        ]

    def train_dataloader(self) -> DataLoader:
        ((_, dataset, _),) = self.sets["fit"]
        return self._loader(
            dataset,
            self.batch_size,
            shuffle=True,
            drop_last=len(dataset) > self.batch_size,
            collate_fn=pairs_collate(dataset),
        )

    def val_dataloader(self) -> DataLoader:
        (loader,) = self._eval_loaders("validate")
        return loader

    def test_dataloader(self) -> list[DataLoader]:
        return self._eval_loaders("test")

    def predict_dataloader(self) -> list[DataLoader]:
        return self._eval_loaders("predict")
