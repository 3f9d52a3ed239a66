"""Does a real-only detector learn its own task? Reals vs their pseudo-fakes, from scratch.

Reproduce (2 CPU cores: a few minutes per experiment; ``--list`` names them):

    PYTHONPATH=. HF_HUB_OFFLINE=1 WANDB_MODE=offline NO_ALBUMENTATIONS_UPDATE=1 \
        .venv/bin/python benchmarks/real_only_learning.py [--only NAME ...] [--probe]

Every experiment fits one detector without pretrained weights on the in-memory
synthetic faces (``configs/data/synthetic.yaml``) given a pseudo-fake generator:
it trains on fresh reals paired with their pseudo-fakes, validates every epoch
on the validation reals and their fixed-seed pseudo-fakes (``val_fakes:
pseudo``), and is tested, from its best checkpoint, on the ``pseudo`` test set
(held-out people's reals and their pseudo-fakes). The table it prints has the
per-epoch pseudo-fake validation frame AUC, the test frame AUC and the wall time.

``--probe`` prints, instead, what the pseudo-fakes and LAA-Net's dense targets
look like at each input size (no training): how far a fake is from its real,
how much of the blend mask is its core, and the feature sizes of the backbone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


@dataclass(frozen=True)
class Experiment:
    """One fit + test: a name, the detector's options, the generator and the size."""

    name: str
    what: str
    model: tuple[str, ...]
    generator: str = "src.augment.sbi.SBI"
    variant: str | None = "laa"
    size: int = 64
    epochs: int = 3
    extra: tuple[str, ...] = field(default_factory=tuple)


#: LAA-Net as the demo profile runs it; each experiment below changes one thing.
LAA_DEMO = ("--model=src.detectors.LAANet", "-c", str(CONFIGS / "profiles/laa_net_demo.yaml"))
UNFROZEN = ("--model.init_args.freeze_backbone_epochs=0",)
CLASSIFIER = (
    "--model=src.detectors.BackboneClassifier",
    "-c",
    str(CONFIGS / "profiles/demo.yaml"),
    "--model.init_args.backbone=efficientnet_b0",
    "--model.init_args.lr_scheduler=null",
    "--trainer.max_epochs=3",
)

EXPERIMENTS = [
    Experiment("laa_demo", "laa_net_demo.yaml (backbone frozen in epoch 0), SBI laa", LAA_DEMO),
    Experiment("laa_unfrozen", "backbone trained from epoch 0, SBI laa", LAA_DEMO + UNFROZEN),
    Experiment(
        "laa_sbi_unfrozen",
        "backbone trained from epoch 0, SBI sbi",
        LAA_DEMO + UNFROZEN,
        variant="sbi",
    ),
    Experiment(
        "laa_no_aux",
        "no heatmap/consistency heads, SBI laa",
        LAA_DEMO
        + UNFROZEN
        + ("--model.init_args.use_heatmap=false", "--model.init_args.use_consistency=false"),
    ),
    Experiment(
        "laa_consistency_1",
        "consistency weight 1 (not 100), SBI laa",
        LAA_DEMO + UNFROZEN + ("--model.init_args.consistency_weight=1",),
    ),
    Experiment("b0_classifier", "EfficientNet-B0 classifier, SBI laa", CLASSIFIER),
    Experiment(
        "b0_classifier_sbi", "EfficientNet-B0 classifier, SBI sbi", CLASSIFIER, variant="sbi"
    ),
    Experiment(
        "laa_sbi_8_epochs",
        "backbone trained from epoch 0, SBI sbi, 8 epochs",
        LAA_DEMO + UNFROZEN,
        variant="sbi",
        epochs=8,
    ),
    Experiment(
        "b0_classifier_sbi_8_epochs",
        "EfficientNet-B0 classifier, SBI sbi, 8 epochs",
        CLASSIFIER,
        variant="sbi",
        epochs=8,
    ),
    Experiment(
        "laa_128", "backbone trained from epoch 0, SBI laa, 128 px", LAA_DEMO + UNFROZEN, size=128
    ),
]


def fit_and_test(experiment: Experiment, workdir: Path, train_videos: int) -> dict[str, object]:
    """Fit then test ``experiment`` under ``workdir``; its per-epoch val AUC and test AUC."""
    from src.cli import main

    generator = [f"--data.init_args.pseudo_fake={experiment.generator}"]
    if experiment.variant is not None:
        generator.append(f"--data.init_args.pseudo_fake.variant={experiment.variant}")
    args = [
        "-c",
        str(CONFIGS / "data/synthetic.yaml"),
        *experiment.model,
        f"--model.init_args.input_size={experiment.size}",
        *generator,
        f"--data.init_args.train_videos={train_videos}",
        "--data.init_args.val_videos=32",
        "--data.init_args.test_videos=32",
        "--data.init_args.test_sets=[pseudo]",
        f"--trainer.max_epochs={experiment.epochs}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        *experiment.extra,
    ]
    cwd = Path.cwd()
    os.chdir(workdir)
    started = time.perf_counter()
    try:
        if main(["fit", *args]) != 0:
            raise RuntimeError(f"{experiment.name}: fit failed")
        (best,) = workdir.glob("runs/*/*/*/checkpoints/best-*.ckpt")
        if main(["test", *args, f"--ckpt_path={best}"]) != 0:
            raise RuntimeError(f"{experiment.name}: test failed")
    finally:
        os.chdir(cwd)
    seconds = time.perf_counter() - started
    (metrics_csv,) = workdir.glob("runs/*/*/*/fit-*/**/metrics.csv")
    val = pd.read_csv(metrics_csv).dropna(subset=["val/frame_auc"])
    (test_json,) = workdir.glob("runs/*/*/*/test-*/test_metrics.json")
    test = json.loads(test_json.read_text())["pseudo"]
    return {
        "val_auc": [round(float(v), 3) for v in val["val/frame_auc"]],
        "test_auc": round(float(test["frame_auc"]), 3),
        "seconds": round(seconds),
    }


def probe(sizes: tuple[int, ...] = (64, 96, 128)) -> None:
    """Print pseudo-fake and target statistics per variant and size (see the module docstring)."""
    import torch

    from src.augment.sbi import SBI
    from src.detectors.backbones import staged_backbone
    from src.detectors.targets import laa_targets
    from src.synthetic.memory import FAKE_STYLES, SyntheticFaceDataset

    print(
        "| variant | px | mean abs(fake - real) /255 | mask > 0.05 | mask > 0.95 "
        "| boundary > 0.5 (of h x w) | heatmap > 0.1 | consistency target mean |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for variant in ("laa", "sbi"):
        for size in sizes:
            data = SyntheticFaceDataset(
                "val",
                32,
                1,
                size,
                FAKE_STYLES["blend"],
                pseudo_fake=SBI(variant=variant),
                pseudo_seed=0,
            )
            items = [data[i] for i in range(len(data))]
            image = torch.cat([item["image"] for item in items]).float()
            mask = torch.cat([item["mask"] for item in items]).float() / 255
            label = torch.cat([item["label"] for item in items])
            fake = label > 0.5
            targets = laa_targets(mask, label, (size // 4, size // 4))
            print(
                f"| {variant} | {size} | {(image[1::2] - image[0::2]).abs().mean():.2f} "
                f"| {(mask[fake] > 0.05).float().mean():.2f} | {(mask[fake] > 0.95).float().mean():.2f} "
                f"| {(targets['boundary'][fake] > 0.5).float().mean():.2f} "
                f"| {(targets['heatmap'][fake] > 0.1).float().mean():.3f} "
                f"| {targets['consistency'][fake].mean():.2f} |"
            )
    print(
        "\nLAA-Net (efficientnet_b0, from scratch, SBI laa), backbone gradient norm per weighted term:"
    )
    from src.detectors import LAANet

    for size in sizes:
        model = LAANet(backbone="efficientnet_b0", input_size=size)
        data = SyntheticFaceDataset(
            "train",
            16,
            1,
            size,
            FAKE_STYLES["blend"],
            pseudo_fake=SBI(variant="laa"),
            pseudo_seed=0,
        )
        items = [data[i] for i in range(len(data))]
        batch = {key: torch.cat([item[key] for item in items]) for key in items[0]}
        batch["image"] = (batch["image"].float() / 255 - 0.5) / 0.5
        batch["mask"] = batch["mask"].float() / 255
        losses = model.loss(model(batch["image"]), batch)
        weights = {
            "bce": 1.0,
            "heatmap": model.heatmap_weight,
            "consistency": model.consistency_weight,
        }
        norms = []
        for term, weight in weights.items():
            grads = torch.autograd.grad(
                weight * losses[term],
                list(model.backbone.parameters()),
                retain_graph=True,
                allow_unused=True,
            )
            norm = torch.sqrt(sum((g**2).sum() for g in grads if g is not None))
            norms.append(
                f"{weight:g} x {term} = {weight * losses[term].item():.2f} (grad {norm:.3g})"
            )
        print(f"  {size} px: " + "; ".join(norms))
    for name in ("efficientnet_b0", "tf_efficientnet_b4"):
        backbone = staged_backbone(name, False, num_classes=0, global_pool="")
        for size in sizes:
            taps = ["C3", "C4", "C5", "C6"]
            with torch.no_grad():
                features = backbone.features(torch.zeros(1, 3, size, size), taps)
            shapes = ", ".join(f"{tap} {tuple(features[tap].shape[-2:])}" for tap in taps)
            print(f"{name} at {size} px: {shapes}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="experiment names (default: all)")
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    parser.add_argument("--probe", action="store_true", help="print target statistics only")
    parser.add_argument("--train-videos", type=int, default=256, help="fresh reals per epoch")
    parser.add_argument("--epochs", type=int, help="override every experiment's epochs")
    options = parser.parse_args()
    if options.list:
        for experiment in EXPERIMENTS:
            print(f"{experiment.name:20s} {experiment.what}")
        return
    if options.probe:
        probe()
        return
    known = {experiment.name: experiment for experiment in EXPERIMENTS}
    unknown = sorted(set(options.only or []) - known.keys())
    if unknown:
        parser.error(f"unknown experiments {unknown}; --list names them")
    chosen = [known[name] for name in options.only] if options.only else EXPERIMENTS
    if options.epochs:
        chosen = [dataclasses.replace(e, epochs=options.epochs) for e in chosen]
    rows = []
    for experiment in chosen:
        with tempfile.TemporaryDirectory(prefix=f"real-only-{experiment.name}-") as folder:
            result = fit_and_test(experiment, Path(folder), options.train_videos)
        rows.append((experiment, result))
        print(f"{experiment.name}: {result}", flush=True)
    print("\n| experiment | setting | px | val AUC per epoch | test AUC (pseudo) | seconds |")
    print("|---|---|---|---|---|---|")
    for experiment, result in rows:
        curve = " ".join(f"{v:.3f}" for v in result["val_auc"])
        print(
            f"| {experiment.name} | {experiment.what} | {experiment.size} | {curve} "
            f"| {result['test_auc']:.3f} | {result['seconds']} |"
        )


if __name__ == "__main__":
    main()
