"""The one interface every dfbench detector implements.

A method's module only builds its network (``forward``) and its objective
(``loss``); this base class owns the rest: the training, validation, test and
predict steps, logging of every loss term, metric accumulation (DDP-correct,
see :class:`~src.metrics.DeepfakeMetric`), optimiser and scheduler wiring, and
the input contract the DataModule reads.

Results a caller can read after a run:

* ``detector.val_results``: ``{"val": metrics}`` of the last validation epoch;
* ``detector.test_results``: ``{test set name: metrics}``, one entry per test
  dataloader, and ``detector.test_predictions`` the per-frame columns behind them;
  every scored dense output the detector declares (:attr:`Detector.dense_outputs`,
  :mod:`src.detectors.dense`) adds its pixel metrics (:class:`~src.metrics.PixelMetric`)
  to the test and validation results: ``pixel_auc``, ``pixel_iou``, ``pixel_f1`` ...
  after the output's metric prefix (none for the manipulation mask of
  :func:`~src.detectors.dense.manipulation_mask_output`);
* ``detector.predictions``: ``{set name: columns}`` after ``predict``, with
  ``sample_idx, video_idx, frame_idx, logit, score, label`` arrays.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from src.contracts import InputContract, as_size
from src.detectors.dense import DenseOutput, check_dense_outputs
from src.detectors.targets import dense_supervision
from src.detectors.training import SAM, sam_training_step
from src.errors import DFBenchError
from src.metrics import DeepfakeMetric, PixelMetric, VideoScore

Batch = dict[str, Tensor]


@dataclass
class DetectorOutput:
    """What ``Detector.forward`` returns.

    ``logit`` (B,) is always present; score = sigmoid(logit) = P(fake). The
    optional fields carry the maps a method's loss or a user's visualisation
    needs; ``extras`` holds anything not named here. Which maps are dense
    outputs to score, write and draw is the detector's declaration
    (:attr:`Detector.dense_outputs`), never a field's name.
    """

    logit: Tensor
    heatmap: Tensor | None = None
    consistency: Tensor | None = None
    mask_logit: Tensor | None = None
    reconstruction: Tensor | None = None
    features: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.logit.dim() != 1:
            raise ValueError(
                f"DetectorOutput.logit must have shape (B,), got {tuple(self.logit.shape)}"
            )

    def maps(self) -> dict[str, Tensor]:
        """Every optional tensor that is set, by name."""
        named = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name not in {"logit", "extras"}
        }
        return {k: v for k, v in named.items() if v is not None} | dict(self.extras)

    def map(self, key: str) -> Tensor | None:
        """The field or ``extras`` entry called ``key`` (None when it is not set)."""
        if key in self.extras:
            return self.extras[key]
        if key in {"logit", "extras"} or key not in {f.name for f in fields(self)}:
            return None
        return getattr(self, key)


class ClassifierView(nn.Module):
    """A detector seen as a plain classifier: images -> (B, 1) logits (shares its weights)."""

    def __init__(self, detector: Detector) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: Tensor) -> Tensor:
        return self.detector(images).logit.unsqueeze(1)


class Detector(pl.LightningModule):
    """Base class of every detector.

    Args:
        input_size: face size fed to the network, an int or (height, width).
            ``None`` takes the method's default (usually its paper's).
        optimizer: a callable that takes the parameters and returns an
            optimiser, e.g. from YAML ``{class_path: torch.optim.Adam,
            init_args: {lr: 2e-4}}``. ``None``: :meth:`default_optimizer`.
        lr_scheduler: a callable that takes the optimiser and returns a
            scheduler. ``None``: :meth:`default_lr_scheduler` (none by default).
        scheduler_interval: step the scheduler every ``"epoch"`` or ``"step"``
            (a scheduler with an ``interval`` attribute, e.g.
            :class:`~src.detectors.training.WarmupDecay`, says it itself).
        video_score: how frame scores become a video score in the metrics.
        sam_rho: train with SAM of this radius around the optimiser (None: off);
            see :mod:`src.detectors.training`.
        sam_adaptive: ASAM's scale-invariant neighbourhood.
        freeze_backbone_epochs: drop the backbone's gradients for this many
            epochs (the module named by :attr:`backbone_name`).
    """

    #: Set by subclasses: (height, width), mean, std when ``input_size`` is None.
    default_contract = InputContract(input_size=(256, 256))
    #: Names (``get_submodule`` paths) of the layers Grad-CAM reads by default; see
    #: :meth:`cam_target_layers`. Subclasses set it (or override the method).
    cam_layers: tuple[str, ...] = ()
    #: The attribute holding the pretrained backbone (what freezing freezes).
    backbone_name = "backbone"
    #: The dense outputs (:mod:`src.detectors.dense`): scored with the pixel metrics when
    #: they have a target, written by predict, drawn by show-masks. Subclasses set it
    #: (an instance may too, when a flag removes an output).
    dense_outputs: tuple[DenseOutput, ...] = ()

    def __init__(
        self,
        input_size: int | tuple[int, int] | None = None,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: str = "epoch",
        video_score: VideoScore = "mean",
        sam_rho: float | None = None,
        sam_adaptive: bool = False,
        freeze_backbone_epochs: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        if scheduler_interval not in {"epoch", "step"}:
            raise DFBenchError(
                f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}"
            )
        self._input_size = None if input_size is None else as_size(input_size)
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.scheduler_interval = scheduler_interval
        self.video_score = video_score
        self.sam = SAM(sam_rho, sam_adaptive) if sam_rho is not None else None
        self.automatic_optimization = self.sam is None
        if freeze_backbone_epochs < 0:
            raise DFBenchError(f"freeze_backbone_epochs must be >= 0, got {freeze_backbone_epochs}")
        self.freeze_backbone_epochs = freeze_backbone_epochs
        self.val_metric = DeepfakeMetric(video_score=video_score)
        self.test_metrics = nn.ModuleList()
        self.predict_metrics = nn.ModuleList()
        # "<stage>__<output key>" (stage "val", "test_<i>"): one per scored dense output.
        self.pixel_metrics = nn.ModuleDict()
        self.val_results: dict[str, dict[str, float]] = {}
        self.test_results: dict[str, dict[str, float]] = {}
        self.test_predictions: dict[str, dict[str, np.ndarray]] = {}
        self.predictions: dict[str, dict[str, np.ndarray]] = {}

    # ----------------------------------------------------------------- contract
    @property
    def input_contract(self) -> InputContract:
        contract = self.default_contract
        if self._input_size is not None:
            contract = InputContract(self._input_size, contract.mean, contract.std)
        return contract

    # ------------------------------------------------------- what methods write
    def forward(self, images: Tensor) -> DetectorOutput:
        raise NotImplementedError

    def step_forward(self, batch: Batch) -> DetectorOutput:
        """The forward pass every training/validation/test/predict step runs.

        ``self(batch["image"])`` by default; a detector that needs more of the
        batch (a second input, per-frame side data, training-only noise) overrides it.
        """
        return self(batch["image"])

    @staticmethod
    def from_checkpoint(
        path: str | Path, map_location: str | torch.device = "cpu", *, trusted: bool = False
    ) -> Detector:
        """The detector a checkpoint holds, rebuilt as the class it was trained as.

        ``dfbench fit`` records the detector's class in the checkpoint's
        hyper-parameters (``_class_path``); only :class:`Detector` subclasses are
        accepted, so a checkpoint cannot make this import anything else.

        Args:
            path: a checkpoint of ``dfbench fit`` (or ``dfbench import-laa-net``).
            map_location: where the weights go.
            trusted: load a file that holds more than tensors and plain values
                (its pickle may run code); off, such a file is refused before
                anything in it runs.

        Raises:
            src.checkpoint_files.UntrustedCheckpointError: the file needs ``trusted``.
            ValueError: the file is not a checkpoint of a dfbench detector.
        """
        from src.checkpoint_files import load_checkpoint

        path = Path(path)
        # Mapped, not read: only the hyper-parameters are needed before Lightning loads it.
        checkpoint = load_checkpoint(path, trusted=trusted, mmap=True)
        hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
        if not isinstance(hparams, dict) or "state_dict" not in checkpoint:
            raise DFBenchError(f"not a dfbench checkpoint (no state_dict/hyper_parameters): {path}")
        class_path = hparams.get("_class_path")
        if not class_path:
            raise DFBenchError(f"{path} does not record its detector class (_class_path)")
        module_name, _, class_name = class_path.rpartition(".")
        cls = getattr(importlib.import_module(module_name), class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, Detector)):
            raise DFBenchError(f"{path}: {class_path} is not a dfbench Detector")
        return cls.load_from_checkpoint(path, map_location=map_location, weights_only=not trusted)

    # ------------------------------------------------------------ attribution
    def cam_target_layers(self) -> list[nn.Module]:
        """The modules Grad-CAM hooks by default (:attr:`cam_layers`); their maps are averaged."""
        if not self.cam_layers:
            raise NotImplementedError(f"{type(self).__name__} declares no cam_layers")
        return [self.get_submodule(name) for name in self.cam_layers]

    def as_classifier(self) -> nn.Module:
        """A module mapping images (B, 3, H, W) to a (B, 1) logit with this detector's weights.

        What Grad-CAM (PRLE's zoo maps, ``dfbench cam``) and model export take.
        """
        return ClassifierView(self)

    def loss(self, output: DetectorOutput, batch: Batch) -> dict[str, Tensor]:
        """Named loss terms with the total under ``"loss"``.

        The default is binary cross-entropy on the logit; methods override it
        and may call :meth:`classification_loss` for their BCE term.
        """
        bce = self.classification_loss(output, batch)
        return {"loss": bce, "bce": bce}

    def classification_loss(
        self, output: DetectorOutput, batch: Batch, label_smoothing: float = 0.0
    ) -> Tensor:
        target = batch["label"].float()
        if label_smoothing:
            target = target * (1 - label_smoothing) + 0.5 * label_smoothing
        return nn.functional.binary_cross_entropy_with_logits(output.logit.float(), target)

    def default_optimizer(self, params: Iterable[Tensor]) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=2e-4, weight_decay=1e-5)

    def default_lr_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        return None

    def parameter_groups(self) -> Iterable[Any]:
        """What the optimiser receives; override for per-module learning rates."""
        return [p for p in self.parameters() if p.requires_grad]

    def backbone_parameters(self) -> list[nn.Parameter]:
        """The parameters :attr:`freeze_backbone_epochs` freezes."""
        backbone = getattr(self, self.backbone_name, None)
        if not isinstance(backbone, nn.Module):
            raise AttributeError(
                f"{type(self).__name__} has no module {self.backbone_name!r} to freeze; "
                "set backbone_name or freeze_backbone_epochs=0"
            )
        return list(backbone.parameters())

    @property
    def backbone_frozen(self) -> bool:
        return self.current_epoch < self.freeze_backbone_epochs

    def on_after_backward(self) -> None:
        if self.freeze_backbone_epochs and self.backbone_frozen:
            for p in self.backbone_parameters():
                p.grad = None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The checkpoint holds every weight: rebuilding the model from it must not
        # fetch pretrained weights (which fails offline).
        hparams = checkpoint.get("hyper_parameters")
        if hparams is not None and "pretrained" in hparams:
            hparams["pretrained"] = False

    # ------------------------------------------------------------------- wiring
    def configure_optimizers(self) -> Any:
        params = self.parameter_groups()
        optimizer = (self.optimizer_factory or self.default_optimizer)(params)
        scheduler = (
            self.scheduler_factory(optimizer)
            if self.scheduler_factory
            else self.default_lr_scheduler(optimizer)
        )
        if scheduler is None:
            return optimizer
        if getattr(scheduler, "total_steps", 0) is None and self._trainer is not None:
            # A run-length schedule (WarmupDecay): only the Trainer knows the length.
            scheduler.total_steps = max(int(self.trainer.estimated_stepping_batches), 1)
        self.scheduler_interval = getattr(scheduler, "interval", self.scheduler_interval)
        config = {"scheduler": scheduler, "interval": self.scheduler_interval}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = "val/loss"
        return {"optimizer": optimizer, "lr_scheduler": config}

    def _log_losses(self, stage: str, losses: dict[str, Tensor], batch_size: int) -> None:
        training = stage == "train"
        for name, value in losses.items():
            # Synchronised under DDP: an epoch's loss is every process's batches, not rank 0's.
            self.log(
                f"{stage}/{name}",
                value.detach(),
                on_step=training,
                on_epoch=True,
                prog_bar=name == "loss",
                batch_size=batch_size,
                sync_dist=True,
                add_dataloader_idx=False,
            )

    def _log_gathered(self, metrics: dict[str, float]) -> None:
        """Log metrics that every process computed from the same gathered predictions.

        The values are already equal on every rank; the "max" reduction across
        ranks keeps them exactly (a mean could move the last bit) and tells
        Lightning they are synchronised.
        """
        self.log_dict(metrics, sync_dist=True, reduce_fx="max")

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        if self.sam is not None:
            losses = sam_training_step(self, batch, self.sam)
        else:
            losses = self.loss(self.step_forward(batch), batch)
        self._log_losses("train", losses, batch["image"].shape[0])
        return losses["loss"] if self.sam is None else losses["loss"].detach()

    def on_train_epoch_end(self) -> None:
        # Manual optimisation (SAM) steps its epoch schedulers itself.
        scheduler = self.lr_schedulers() if self.sam is not None else None
        if scheduler is not None and self.scheduler_interval == "epoch":
            scheduler.step()

    @staticmethod
    def _update(metric: DeepfakeMetric, output: DetectorOutput, batch: Batch) -> None:
        metric.update(
            output.logit,
            batch["label"],
            batch["sample_idx"],
            batch["video_idx"],
            batch.get("frame_idx"),
        )

    def declared_dense_outputs(self) -> tuple[DenseOutput, ...]:
        """:attr:`dense_outputs`, checked (no shared key, name or scored metric prefix)."""
        check_dense_outputs(self.dense_outputs, type(self).__name__)
        return tuple(self.dense_outputs)

    def dense_maps(self, output: DetectorOutput) -> list[tuple[DenseOutput, Tensor]]:
        """The declared dense outputs present in ``output``, with their logits."""
        present = []
        for dense in self.declared_dense_outputs():
            logits = output.map(dense.key)
            if logits is not None:
                present.append((dense, logits))
        return present

    def _update_pixel_metric(self, stage: str, output: DetectorOutput, batch: Batch) -> None:
        """Localisation is a result: the pixel metrics of every scored dense output.

        Only the samples whose mask is known count (reals, fakes with a mask).
        """
        for dense, logits in self.dense_maps(output):
            if not dense.scored:
                continue
            key = f"{stage}__{dense.key}"
            if key not in self.pixel_metrics:
                self.pixel_metrics[key] = PixelMetric().to(self.device)
            self.pixel_metrics[key].update(
                logits,
                dense.target(batch),
                batch["label"],
                batch["sample_idx"],
                dense_supervision(batch),
            )

    def _pixel_results(self, stage: str, compute: bool = True) -> dict[str, float]:
        """The pixel metrics gathered for ``stage`` ({} without scored outputs), then reset."""
        results: dict[str, float] = {}
        for dense in self.declared_dense_outputs():
            key = f"{stage}__{dense.key}"
            if not dense.scored or key not in self.pixel_metrics:
                continue
            metric = self.pixel_metrics[key]
            if not metric.update_called:
                continue
            if compute:
                results |= {f"{dense.prefix}{name}": v for name, v in metric.compute().items()}
            metric.reset()
        return results

    # ------------------------------------------ evaluation's memory layout on a CPU
    def evaluation_layout(self, evaluating: bool) -> None:
        """Weights in channels-last layout while a CPU evaluates, the default one otherwise.

        On a CPU, oneDNN's convolutions then run in that layout: evaluation (validation,
        test, predict) takes 10-35 % less time for every shipped detector at demo size
        (a third for the Xception-based ones), and logits change only at float rounding
        (``benchmarks/eval_layout.py``). Training keeps the default layout, where it was
        not consistently faster on 2 cores; GPUs keep it too (not measured here).
        """
        if self.device.type == "cpu":
            layout = torch.channels_last if evaluating else torch.contiguous_format
            self.to(memory_format=layout)

    def on_validation_start(self) -> None:
        self.evaluation_layout(True)

    def on_validation_end(self) -> None:
        self.evaluation_layout(False)

    def on_test_start(self) -> None:
        self.evaluation_layout(True)

    def on_test_end(self) -> None:
        self.evaluation_layout(False)

    def on_predict_start(self) -> None:
        self.evaluation_layout(True)

    def on_predict_end(self) -> None:
        self.evaluation_layout(False)

    def validation_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        output = self.step_forward(batch)
        self._log_losses("val", self.loss(output, batch), batch["image"].shape[0])
        self._update(self.val_metric, output, batch)
        self._update_pixel_metric("val", output, batch)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self.val_metric.update_called:
            self.val_metric.reset()
            self._pixel_results("val", compute=False)
            return
        metrics = self.val_metric.compute() | self._pixel_results("val")
        self.val_metric.reset()
        self.val_results = {"val": metrics}
        self._log_gathered({f"val/{k}": v for k, v in metrics.items()})

    # ------------------------------------------------------- test and predict
    def set_names(self, stage: str, count: int) -> list[str]:
        datamodule = getattr(self.trainer, "datamodule", None)
        names = list(getattr(datamodule, f"{stage}_set_names", None) or [])
        if len(names) != count:
            names = [stage] if count == 1 else [f"{stage}_{i}" for i in range(count)]
        return names

    def _metric_for(self, metrics: nn.ModuleList, dataloader_idx: int) -> DeepfakeMetric:
        while len(metrics) <= dataloader_idx:
            metrics.append(DeepfakeMetric(video_score=self.video_score).to(self.device))
        return metrics[dataloader_idx]

    def on_test_epoch_start(self) -> None:
        self.test_metrics = nn.ModuleList()
        self.test_results = {}
        self.test_predictions = {}

    def test_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        output = self.step_forward(batch)
        self._update(self._metric_for(self.test_metrics, dataloader_idx), output, batch)
        self._update_pixel_metric(f"test_{dataloader_idx}", output, batch)

    def on_test_epoch_end(self) -> None:
        names = self.set_names("test", len(self.test_metrics))
        for index, (name, metric) in enumerate(zip(names, self.test_metrics, strict=True)):
            # One gather: the summary is computed from the gathered predictions.
            self.test_predictions[name] = metric.predictions()
            self.test_results[name] = metric.summarise(self.test_predictions[name])
            self.test_results[name] |= self._pixel_results(f"test_{index}")
            self._log_gathered({f"test/{name}/{k}": v for k, v in self.test_results[name].items()})
            metric.reset()

    def on_predict_epoch_start(self) -> None:
        self.predict_metrics = nn.ModuleList()
        self.predictions = {}

    def predict_step(
        self, batch: Batch, batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Tensor]:
        output = self.step_forward(batch)
        self._update(self._metric_for(self.predict_metrics, dataloader_idx), output, batch)
        result = {
            "logit": output.logit,
            "score": torch.sigmoid(output.logit),
            "sample_idx": batch["sample_idx"],
        }
        dense = self.dense_maps(output)
        if dense:
            # Taken (and written out) by dfbench predict's mask writer, not kept in memory.
            result["dense"] = {d.name: torch.sigmoid(logits) for d, logits in dense}
            result |= {"video_idx": batch["video_idx"], "frame_idx": batch["frame_idx"]}
        return result

    def on_predict_epoch_end(self) -> None:
        names = self.set_names("predict", len(self.predict_metrics))
        for name, metric in zip(names, self.predict_metrics, strict=True):
            self.predictions[name] = metric.predictions()
            metric.reset()
