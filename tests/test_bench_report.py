"""Reports from a results store on disk: every row finds its predictions, ROC plots."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pandas as pd
import pytest
from bench_data import make_predictions, result

from src.bench.plots import roc_curves
from src.bench.report import curve_rows, report, sanity_line
from src.bench.schema import RESULT_COLUMNS, read_predictions
from src.metrics import roc_auc

TESTED = ("Deepfakes", "FaceSwap")


def cross_manipulation_store(root: Path) -> pd.DataFrame:
    """Two cells (trained on Deepfakes, on FaceSwap), each tested on both manipulations.

    As the runner writes them: each test variant's parquet names the set
    ``ffpp``, while the results rows call it ``ffpp:<manipulation>``. A cell
    tested on its own manipulation separates it perfectly; on the other it
    is weak, so an interval shows which file it came from.
    """
    rows = []
    for trained in TESTED:
        for k, tested in enumerate(TESTED):
            perfect = trained == tested
            predictions = make_predictions(
                seed=10 * k + len(trained),
                n_videos=30,
                signal=50.0 if perfect else 0.5,
                decimals=3,
                name="ffpp",
            )
            relative = (
                Path("cells") / f"xception-{trained}" / f"test_{k}" / "test_predictions.parquet"
            )
            (root / relative).parent.mkdir(parents=True)
            predictions.to_parquet(root / relative, index=False)
            auc = roc_auc(predictions["score"].to_numpy(), predictions["label"].to_numpy())
            for level in ("frame", "video"):
                rows.append(
                    result("xception", f"ffpp:{tested}", 0, level, {"methods": [trained]}, auc=auc)
                    | {"predictions": str(relative), "prediction_set": "ffpp", "cell": trained}
                )
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def test_cross_manipulation_rows_find_their_predictions(tmp_path: Path) -> None:
    results = cross_manipulation_store(tmp_path)
    frames = read_predictions(tmp_path, results.iloc[0])
    assert len(frames) > 0 and set(frames["set"]) == {"ffpp"}

    written = report(results, tmp_path, "cross_manipulation", wandb=False)

    # One ROC plot per tested manipulation, with a curve per training manipulation.
    assert {"roc_ffpp_Deepfakes.png", "roc_ffpp_FaceSwap.png"} <= set(written)
    curves = curve_rows(results)
    assert list(curves) == ["ffpp:Deepfakes", "ffpp:FaceSwap"]
    assert list(curves["ffpp:Deepfakes"]) == [
        "xception (methods=Deepfakes)",
        "xception (methods=FaceSwap)",
    ]
    # Every AUC entry has an interval from its own file: [100, 100] where perfect.
    markdown = (tmp_path / "tables" / "cross_manipulation_frame.md").read_text()
    line = next(row for row in markdown.splitlines() if "| Deepfakes |" in row)
    entries = [e.strip(" *<u>/") for e in line.split("|")[3:5]]
    assert entries[0] == "100.00 [100.00, 100.00]"
    low, high = map(float, re.fullmatch(r"[\d.]+ \[([\d.]+), ([\d.]+)\]", entries[1]).groups())
    assert low < 100.0 * results.iloc[2]["auc"] < high < 100.0


def test_missing_prediction_set_is_an_error(tmp_path: Path) -> None:
    results = cross_manipulation_store(tmp_path)
    row = results.iloc[0].copy()
    row["prediction_set"] = "cdf2"
    with pytest.raises(ValueError, match="no predictions of set 'cdf2'"):
        read_predictions(tmp_path, row)


def test_roc_png(tmp_path: Path) -> None:
    by_detector = {
        "xception": make_predictions(seed=5, n_videos=40),
        "laa_net": make_predictions(seed=6, n_videos=40, signal=2.0),
    }
    for level in ("frame", "video"):
        path = roc_curves(by_detector, "cdf2", level, tmp_path / "plots")
        assert path == tmp_path / "plots" / f"roc_cdf2_{level}.png"
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
        assert struct.unpack(">II", data[16:24]) == (500, 500)
    assert not list((tmp_path / "plots").glob(".*tmp"))
    reals_only = {name: p[p["label"] == 0] for name, p in by_detector.items()}
    with pytest.raises(ValueError, match="both classes"):
        roc_curves(reals_only, "cdf2", "frame", tmp_path / "x.png")
    mixed = {"xception": pd.concat([by_detector["xception"], make_predictions(7, 5, name="dfdc")])}
    with pytest.raises(ValueError, match="several sets"):
        roc_curves(mixed, "cdf2", "frame", tmp_path / "x.png")


def test_sanity_line_names_each_cell_and_flags_chance() -> None:
    rows = []
    for detector, seed, val_auc, epoch in [
        ("xception", 0, 0.9812, 3),
        ("xception", 1, 0.55, 0),
        ("laa_net", 0, float("nan"), float("nan")),  # fitted before the score was recorded
    ]:
        for level in ("frame", "video"):
            rows.append(
                result(detector, "cdf2", seed, level)
                | {"cell": f"{detector}-{seed}", "val_auc": val_auc, "best_epoch": epoch}
            )
    results = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    assert sanity_line(results) == (
        "validation frame AUC (%) at the selected checkpoints: xception s0 98.12 at epoch 3, "
        "xception s1 55.00 at epoch 0 (near chance), laa_net s0 not recorded"
    )
    assert sanity_line(results.assign(val_auc=float("nan"))) is None
    one_seed = results[results["seed"] == 0]
    assert sanity_line(one_seed).endswith(": xception 98.12 at epoch 3, laa_net not recorded")
    undefined = one_seed.assign(val_auc=float("-inf"), best_epoch=0)
    assert sanity_line(undefined).endswith(
        ": xception undefined at epoch 0 (one class in the validation batches?), "
        "laa_net undefined at epoch 0 (one class in the validation batches?)"
    )
    pseudo = one_seed.assign(val_auc=0.971, best_epoch=3, val_fakes="pseudo")
    pseudo.loc[pseudo["detector"] == "xception", "val_fakes"] = "real"
    assert sanity_line(pseudo).endswith(
        ": xception 97.10 at epoch 3, laa_net pseudo-fake val 97.10 at epoch 3"
    )
