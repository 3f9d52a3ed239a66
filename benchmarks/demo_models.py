"""What the benchmark scripts beside this file share: detectors built as the demo builds
them, and a median timer."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TypeVar

import torch

from src.detectors.base import Detector
from src.detectors.registry import build_detector

T = TypeVar("T")

#: What the demo changes beyond ``pretrained: false`` and the input size, per detector:
#: VGG-16's narrowed head (configs/profiles/vgg16_demo.yaml).
DEMO_KWARGS = {"vgg16": {"backbone_kwargs": {"mlp_ratio": 0.125}}}


def demo_detector(name: str, size: int = 64, seed: int = 0) -> Detector:
    """``name`` from scratch at ``size`` px, seeded, as a demo cell builds it."""
    torch.manual_seed(seed)
    return build_detector(name, pretrained=False, input_size=size, **DEMO_KWARGS.get(name, {}))


def median_ms(run: Callable[[], T], repeats: int) -> tuple[float, T]:
    """Median wall time of ``repeats`` calls of ``run`` after one warm-up call, in ms, and
    what the last call returned."""
    result = run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times), result
