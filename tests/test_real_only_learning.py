"""Real-only detectors learn their own task: held-out reals against their pseudo-fakes.

Each test fits a detector from scratch on the in-memory faces with its pseudo-fake
generator (``benchmarks/real_only_learning.py`` runs the same experiments and
more), prints its per-epoch pseudo-fake validation AUC, and asserts the frame AUC
of its best checkpoint on the ``pseudo`` test set: the reals of people it never
saw and their fixed-seed pseudo-fakes.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def benchmark():
    """The benchmark module (``benchmarks/`` is no package)."""
    spec = importlib.util.spec_from_file_location(
        "real_only_learning", ROOT / "benchmarks/real_only_learning.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


#: A known failure, kept visible: from scratch at 64 px LAA-Net (and a plain EfficientNet-B0
#: on the same pairs) stays near chance on SBI pseudo-fakes within a few epochs
#: (docs/laa_net.md, "Does it learn?"). Strict: the day it learns, this test fails and the
#: mark must go.
NOT_LEARNT_IN_BUDGET = pytest.mark.xfail(
    strict=True, reason="LAA-Net does not learn SBI from scratch at 64 px in 3 epochs"
)


@pytest.mark.slow
@pytest.mark.parametrize("name", [pytest.param("laa_unfrozen", marks=NOT_LEARNT_IN_BUDGET)])
def test_detector_separates_held_out_reals_from_their_pseudo_fakes(
    name: str, tmp_path: Path
) -> None:
    bench = benchmark()
    (experiment,) = [e for e in bench.EXPERIMENTS if e.name == name]
    result = bench.fit_and_test(experiment, tmp_path, train_videos=256)
    print(f"{name}: pseudo-fake val AUC per epoch {result['val_auc']}, test {result['test_auc']}")
    assert len(result["val_auc"]) == experiment.epochs
    assert result["test_auc"] >= 0.90, result
