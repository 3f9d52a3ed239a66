"""Paper-shaped tables built from the results store.

Every builder is a pure function of a DataFrame of results rows (columns
:data:`src.bench.schema.RESULT_COLUMNS`) and returns a DataFrame whose entries
are :class:`TableEntry` objects (mean over seeds in percent, std, seed count
and an optional bootstrap interval); :mod:`src.bench.render` turns it into
text.

Row labels are detector names; when one detector appears with several flag
sets in the selection (an ablation grid that reuses the name) the flags that
differ are appended, e.g. ``laa_net (efpn=False)``, and when the selection holds
several training sets the training set is appended in brackets. Two aggregated
groups that would land in the same entry raise ``ValueError``: filter the
results (benchmark, profile, ...) first.

Given :class:`Intervals`, every builder adds a bootstrap interval over videos
(:mod:`src.bench.bootstrap`) to each AUC entry, from the predictions of exactly
the results rows (seeds) that the entry aggregates.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from src.bench.bootstrap import auc_resamples, draw_video_counts, n_videos, percentile_interval
from src.bench.schema import PIXEL_METRICS
from src.errors import DFBenchError

METRICS = ("auc", "ap", "acc", "eer", "real_acc", "fake_acc", *PIXEL_METRICS)
GROUP_KEYS = ("benchmark", "profile", "detector", "flags", "train_set", "test_set", "level")
#: Flags of a test variant that perturbs the test faces (robustness grids).
PERTURBATION_FLAGS = ("test_perturbation", "test_perturbation_level")
CLEAN = "clean"
_ROW = "_row"  # internal column: the table row a results row belongs to
_RUNS = "_runs"  # internal column: positions of the results rows a group aggregates

#: Maps one results row to that run's per-frame predictions of the row's test set
#: (columns :data:`src.bench.schema.PREDICTION_COLUMNS`).
PredictionsLoader = Callable[[pd.Series], pd.DataFrame]


@dataclass(frozen=True)
class TableEntry:
    """One value of a table: a metric in percent over ``n`` seeds, optionally with an interval."""

    mean: float = math.nan
    std: float = math.nan
    n: int = 0
    low: float = math.nan
    high: float = math.nan

    def __str__(self) -> str:
        if math.isnan(self.mean):
            return "-"
        text = f"{self.mean:.2f}"
        if self.n > 1 and not math.isnan(self.std):
            text += f" ± {self.std:.2f}"
        if not (math.isnan(self.low) or math.isnan(self.high)):
            text += f" [{self.low:.2f}, {self.high:.2f}]"
        return text

    __repr__ = __str__  # so that printing a table shows the paper's values


EMPTY = TableEntry()


@dataclass(frozen=True)
class Intervals:
    """Bootstrap AUC intervals for a table's AUC entries.

    Args:
        load_predictions: a results row's predictions (see
            :func:`src.bench.schema.read_predictions`).
        n_resamples, confidence: as in :func:`src.bench.bootstrap.bootstrap_auc`.
        seed: seed of the draws; the k-th run of an entry draws with ``[seed, k]``.
    """

    load_predictions: PredictionsLoader
    n_resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0


# --------------------------------------------------------------------------- aggregation


def _canonical_flags(flags: Any) -> str:
    """Flags as sorted-key JSON, so that equal flag sets group together however written."""
    return json.dumps(flags_dict(flags), sort_keys=True)


def flags_dict(flags: Any) -> dict[str, Any]:
    """A results row's ``flags`` (JSON text, a dict, or empty) as a dict."""
    if isinstance(flags, dict):
        return flags
    if flags is None or (isinstance(flags, float) and math.isnan(flags)) or flags == "":
        return {}
    return json.loads(flags)


def _aggregate(results: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    frame = results.copy()
    frame["flags"] = frame["flags"].map(_canonical_flags)
    frame[_RUNS] = np.arange(len(frame))
    metrics = [m for m in METRICS if m in frame.columns]
    frame[metrics] = frame[metrics].astype(float) * 100.0
    grouped = frame.groupby(list(keys), sort=False, dropna=False)
    out = grouped[metrics].agg(["mean", "std"])
    out.columns = [f"{metric}_{stat}" for metric, stat in out.columns]
    out["n_seeds"] = grouped.size()
    out[_RUNS] = grouped[_RUNS].agg(list)
    return out.reset_index()


def aggregate(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample std (ddof=1) over seeds of every metric, in percent.

    Args:
        results: results rows (:data:`src.bench.schema.RESULT_COLUMNS`).

    Returns:
        One row per :data:`GROUP_KEYS` value, in order of first appearance, with
        ``<metric>_mean``, ``<metric>_std`` (NaN for one seed) and ``n_seeds``;
        ``flags`` rewritten as sorted-key JSON.
    """
    return _aggregate(results, GROUP_KEYS).drop(columns=_RUNS)


# --------------------------------------------------------------------------- row labels


def _format_flags(flags: dict[str, Any]) -> str:
    parts = []
    for key, value in sorted(flags.items()):
        if isinstance(value, list | tuple):
            value = "+".join(map(str, value))
        parts.append(f"{key}={value}")
    return ", ".join(parts)


def row_labels(
    rows: pd.DataFrame, consumed: Iterable[str] = (), show_train_set: bool = True
) -> pd.Series:
    """The label of each results row: detector, plus what distinguishes its variants.

    Args:
        rows: results rows.
        consumed: flags that a table turns into rows or columns itself, so
            they must not split the rows again.
        show_train_set: append ``[train_set]`` when ``rows`` hold several.
    """
    consumed = set(consumed)
    residual = rows["flags"].map(
        lambda f: {k: v for k, v in flags_dict(f).items() if k not in consumed}
    )
    residual_json = residual.map(lambda f: json.dumps(f, sort_keys=True))
    variants = residual_json.groupby(rows["detector"]).nunique()
    several_train_sets = show_train_set and rows["train_set"].nunique() > 1
    labels = []
    for detector, flags, train_set in zip(
        rows["detector"], residual, rows["train_set"], strict=True
    ):
        label = str(detector)
        if variants[detector] > 1:
            label += f" ({_format_flags(flags)})" if flags else " (default)"
        if several_train_sets:
            label += f" [{train_set}]"
        labels.append(label)
    return pd.Series(labels, index=rows.index, dtype=object)


def _select_level(results: pd.DataFrame, level: str) -> pd.DataFrame:
    if level not in ("frame", "video"):
        raise ValueError(f"level must be 'frame' or 'video', got {level!r}")
    return results[results["level"] == level].copy()


def _unique_in_order(values: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


# --------------------------------------------------------------------------- entries


@dataclass
class _Entries:
    values: dict[tuple[Any, Any], TableEntry]  # by (row, column)
    auc_runs: dict[tuple[Any, Any], list[int]]  # the results rows behind each AUC entry


def _entries(
    agg: pd.DataFrame,
    row_keys: Sequence[str],
    column_of: Callable[[pd.Series, str], Any],
    metrics: Sequence[str],
) -> _Entries:
    """Entries from aggregated rows; two groups in one entry are an error."""
    entries = _Entries({}, {})
    for _, group in agg.iterrows():
        row = tuple(group[k] for k in row_keys) if len(row_keys) > 1 else group[row_keys[0]]
        for metric in metrics:
            key = (row, column_of(group, metric))
            if key in entries.values:
                raise DFBenchError(
                    f"several result groups fall in the table entry {key}; filter the results "
                    "to one benchmark/profile (or give the variants distinct detector names)"
                )
            entries.values[key] = TableEntry(
                mean=float(group[f"{metric}_mean"]),
                std=float(group[f"{metric}_std"]),
                n=int(group["n_seeds"]),
            )
            if metric == "auc":
                entries.auc_runs[key] = list(group[_RUNS])
    return entries


def _add_intervals(
    entries: _Entries, rows: pd.DataFrame, level: str, intervals: Intervals | None
) -> None:
    """Put a bootstrap interval (percent) on every AUC entry.

    With several seeds the bootstrap AUCs of every seed's predictions are
    pooled before taking percentiles, so the interval covers both the
    test-set sampling and the seed-to-seed spread.
    """
    if intervals is None:
        return
    for key, runs in entries.auc_runs.items():
        samples = []
        for k, position in enumerate(runs):
            predictions = intervals.load_predictions(rows.iloc[position])
            rng = np.random.default_rng([intervals.seed, k])
            counts = draw_video_counts(n_videos(predictions), intervals.n_resamples, rng)
            samples.append(auc_resamples(predictions, level, counts))
        low, high = percentile_interval(np.concatenate(samples), intervals.confidence)
        entries.values[key] = replace(entries.values[key], low=100.0 * low, high=100.0 * high)


def _assemble(
    entries: _Entries,
    rows: list[Any],
    columns: list[Any],
    index_names: Sequence[str],
    column_names: Sequence[str],
) -> pd.DataFrame:
    data = [[entries.values.get((r, c), EMPTY) for c in columns] for r in rows]
    if len(index_names) > 1:
        index = pd.MultiIndex.from_tuples(rows, names=list(index_names))
    else:
        index = pd.Index(rows, name=index_names[0], dtype=object)
    if len(column_names) > 1:
        cols = pd.MultiIndex.from_tuples(columns, names=list(column_names))
    else:
        cols = pd.Index(columns, name=column_names[0], dtype=object)
    return pd.DataFrame(data, index=index, columns=cols, dtype=object)


# --------------------------------------------------------------------------- table builders


def cross_dataset_table(
    results: pd.DataFrame,
    level: str,
    metrics: Sequence[str] = ("auc", "ap"),
    *,
    intervals: Intervals | None = None,
) -> pd.DataFrame:
    """LAA-Net Table 1: rows = detectors, columns = (test set, metric).

    Returns:
        Entries indexed by detector; columns ``MultiIndex(test_set, metric)``
        with the test sets in order of first appearance.
    """
    rows = _select_level(results, level)
    rows[_ROW] = row_labels(rows)
    agg = _aggregate(rows, (_ROW, *GROUP_KEYS))
    entries = _entries(agg, (_ROW,), lambda g, m: (g["test_set"], m), metrics)
    _add_intervals(entries, rows, level, intervals)
    columns = [(t, m) for t in _unique_in_order(agg["test_set"]) for m in metrics]
    return _assemble(
        entries, _unique_in_order(agg[_ROW]), columns, ["detector"], ["test_set", "metric"]
    )


def in_dataset_table(
    results: pd.DataFrame,
    level: str,
    metrics: Sequence[str] = ("acc", "auc"),
    *,
    intervals: Intervals | None = None,
) -> pd.DataFrame:
    """PANet Table I / Y-net Table II: rows = detectors, columns = (train set, metric).

    Only rows tested on their own training set (``test_set == train_set``) count,
    e.g. FF++ c23 and c40 side by side.
    """
    rows = _select_level(results, level)
    rows = rows[rows["test_set"] == rows["train_set"]].copy()
    rows[_ROW] = row_labels(rows, show_train_set=False)
    agg = _aggregate(rows, (_ROW, *GROUP_KEYS))
    entries = _entries(agg, (_ROW,), lambda g, m: (g["train_set"], m), metrics)
    _add_intervals(entries, rows, level, intervals)
    columns = [(t, m) for t in _unique_in_order(agg["train_set"]) for m in metrics]
    return _assemble(
        entries, _unique_in_order(agg[_ROW]), columns, ["detector"], ["train_set", "metric"]
    )


def _methods_label(flags: Any) -> str:
    methods = flags_dict(flags).get("methods")
    if methods is None:
        return "all"
    if isinstance(methods, list | tuple):
        return "+".join(map(str, methods))
    return str(methods)


def cross_manipulation_table(
    results: pd.DataFrame, level: str, metric: str = "auc", *, intervals: Intervals | None = None
) -> pd.DataFrame:
    """Y-net Table III: rows = (detector, training manipulation), columns = test sets + avg.

    The training manipulation comes from ``flags["methods"]`` (a list is joined
    with ``+``; no flag means ``all``). ``avg`` is the mean over test sets per
    seed, then mean ± std over seeds, so its std is the spread of the average
    (it has no interval).
    """
    rows = _select_level(results, level)
    rows["train_method"] = rows["flags"].map(_methods_label)
    rows[_ROW] = row_labels(rows, ("methods",))
    agg = _aggregate(rows, (_ROW, "train_method", *GROUP_KEYS))
    entries = _entries(agg, (_ROW, "train_method"), lambda g, m: g["test_set"], (metric,))
    _add_intervals(entries, rows, level, intervals)

    # The average is taken within each seed before aggregating over seeds.
    per_seed = rows.groupby([_ROW, "train_method", "seed"], sort=False)[metric].mean()
    per_seed = per_seed.reset_index()
    per_seed["flags"] = "{}"
    avg = _aggregate(per_seed, (_ROW, "train_method"))
    for _, group in avg.iterrows():
        entries.values[((group[_ROW], group["train_method"]), "avg")] = TableEntry(
            mean=float(group[f"{metric}_mean"]),
            std=float(group[f"{metric}_std"]),
            n=int(group["n_seeds"]),
        )
    index = _unique_in_order(zip(agg[_ROW], agg["train_method"], strict=True))
    columns = [*_unique_in_order(agg["test_set"]), "avg"]
    return _assemble(entries, index, columns, ["detector", "train_method"], ["test_set"])


def _level_sort_key(level: str) -> tuple[int, float, str]:
    try:
        return (0, float(level), level)
    except ValueError:
        return (1, 0.0, level)


def _perturbation_flag(flags: dict) -> tuple[str | None, object]:
    """(name, level) of a test perturbation flag, None for a clean test."""
    value = flags.get("test_perturbation")
    if isinstance(value, dict):
        args = value.get("init_args") or {}
        return args.get("name"), args.get("level")
    return value, flags.get("test_perturbation_level")


def robustness_table(
    results: pd.DataFrame, level: str, metric: str = "auc", *, intervals: Intervals | None = None
) -> pd.DataFrame:
    """LAA-Net Table 2: rows = detectors, columns = (perturbation, strength).

    The perturbation and its strength come from ``flags["test_perturbation"]``:
    a ``{class_path, init_args: {name, level}}`` object (or, in older results, a
    name with the level in ``flags["test_perturbation_level"]``); rows without a perturbation form
    the ``("clean", "")`` column, first. Strengths are strings, sorted
    numerically within each perturbation.
    """
    rows = _select_level(results, level)
    # Plain lists, not Series.map: pandas would turn integer strengths into floats.
    named = [_perturbation_flag(flags_dict(f)) for f in rows["flags"]]
    perturbation = [name or CLEAN for name, _ in named]
    strength = [level for _, level in named]
    rows["_perturbation"] = pd.Series(perturbation, index=rows.index, dtype=object)
    rows["_strength"] = [
        "" if p == CLEAN or s is None else str(s)
        for p, s in zip(perturbation, strength, strict=True)
    ]
    rows[_ROW] = row_labels(rows, PERTURBATION_FLAGS)
    agg = _aggregate(rows, (_ROW, "_perturbation", "_strength", *GROUP_KEYS))
    entries = _entries(agg, (_ROW,), lambda g, m: (g["_perturbation"], g["_strength"]), (metric,))
    _add_intervals(entries, rows, level, intervals)
    perturbations = _unique_in_order(agg["_perturbation"])
    if CLEAN in perturbations:
        perturbations.remove(CLEAN)
        perturbations.insert(0, CLEAN)
    columns = []
    for p in perturbations:
        strengths = _unique_in_order(agg.loc[agg["_perturbation"] == p, "_strength"])
        columns += [(p, s) for s in sorted(strengths, key=_level_sort_key)]
    return _assemble(
        entries, _unique_in_order(agg[_ROW]), columns, ["detector"], ["perturbation", "level"]
    )
