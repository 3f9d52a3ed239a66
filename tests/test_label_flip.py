"""The demo's numbers move with the truth: a detector's AUC mirrors when the labels are swapped.

A pipeline that printed the same table whatever the labels (a metric reading the
wrong column, a loss that ignores its target) would pass a check of the AUC alone.
Here one detector is trained on honest labels and on swapped labels
(``flip_labels``, pictures unchanged) and each is tested on both: the honest
model scores ``a`` on the truth and exactly ``1 - a`` on the lie, and the model
trained on the lie scores about ``1 - a`` on the truth.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import xception_learning_args

from src.cli import main


def _fit_and_test(flip_training: bool) -> dict[bool, float]:
    """Frame AUC on the honest and the flipped test set of one fitted model (cwd: a tmp dir)."""
    name = f"flip_{flip_training}"
    configs = [*xception_learning_args(), f"--run_name={name}"]
    assert main(["fit", *configs, f"--data.init_args.flip_labels={flip_training}"]) == 0
    (run,) = Path("runs").glob(f"xception*/*/{name}")
    aucs = {}
    for flip_test in (False, True):
        before = set(run.glob("test-*"))
        test = [*configs, f"--data.init_args.flip_labels={flip_test}", "--ckpt_path=best"]
        assert main(["test", *test]) == 0
        (session,) = set(run.glob("test-*")) - before
        metrics = json.loads((session / "test_metrics.json").read_text())
        aucs[flip_test] = metrics["blend"]["frame_auc"]
    return aucs


@pytest.mark.slow
def test_swapped_labels_mirror_a_learnt_auc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    honest = _fit_and_test(flip_training=False)
    assert honest[False] > 0.9, honest  # it learnt
    assert honest[True] == pytest.approx(1 - honest[False], abs=1e-6)  # same scores, mirrored
    lied_to = _fit_and_test(flip_training=True)
    assert lied_to[False] < 0.1, lied_to  # trained on the lie, it detects reals
    assert lied_to[False] == pytest.approx(1 - honest[False], abs=0.12)
