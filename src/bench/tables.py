"""Paper-shaped tables from the results store, their rendering, and bootstrap intervals.

Every builder is a pure function of a DataFrame of results rows (columns
:data:`src.bench.schema.RESULT_COLUMNS`) and returns a DataFrame whose cells are
:class:`Cell` objects (mean over seeds in percent, std, seed count and an
optional bootstrap interval). Keeping the numbers in the cells, rather than
pre-formatted strings, lets one table feed every renderer: the highlighting is
computed on the means, CSV gets plain numbers, Markdown and LaTeX get markup.

Row labels are detector names; when one detector appears with several flag
sets in the selection (an ablation grid that reuses the name) the flags that
differ are appended, e.g. ``laa_net (efpn=False)``, and when the selection holds
several training sets the training set is appended in brackets. Two aggregated
groups that would land in the same cell raise ``ValueError``: filter the
results (benchmark, profile, ...) first.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from src.metrics import video_scores

METRICS = ("auc", "ap", "acc", "eer", "real_acc", "fake_acc")
GROUP_KEYS = ("benchmark", "profile", "detector", "flags", "train_set", "test_set", "level")
LOWER_IS_BETTER = frozenset({"eer"})
METRIC_NAMES = {
    "auc": "AUC",
    "ap": "AP",
    "acc": "ACC",
    "eer": "EER",
    "real_acc": "real ACC",
    "fake_acc": "fake ACC",
    "avg": "Avg",
}
CLEAN = "clean"
_ROW = "_row"  # internal column: the table row a results row belongs to

# A function from one results row to that run's per-frame predictions
# (columns src.bench.schema.PREDICTION_COLUMNS).
PredictionsLoader = Callable[[pd.Series], pd.DataFrame]


@dataclass(frozen=True)
class Cell:
    """One table cell: a metric in percent over ``n`` seeds, optionally with an interval."""

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

    __repr__ = __str__  # so that printing a table shows the paper's cells


EMPTY = Cell()


# --------------------------------------------------------------------------- aggregation


def _canonical_flags(flags: Any) -> str:
    """Flags as sorted-key JSON, so that equal flag sets group together however written."""
    return json.dumps(_flags_dict(flags), sort_keys=True)


def _flags_dict(flags: Any) -> dict[str, Any]:
    if isinstance(flags, dict):
        return flags
    if flags is None or (isinstance(flags, float) and math.isnan(flags)) or flags == "":
        return {}
    return json.loads(flags)


def _aggregate(results: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    frame = results.copy()
    frame["flags"] = frame["flags"].map(_canonical_flags)
    metrics = [m for m in METRICS if m in frame.columns]
    frame[metrics] = frame[metrics].astype(float) * 100.0
    grouped = frame.groupby(list(keys), sort=False, dropna=False)
    out = grouped[metrics].agg(["mean", "std"])
    out.columns = [f"{metric}_{stat}" for metric, stat in out.columns]
    out["n_seeds"] = grouped.size()
    return out.reset_index()


def aggregate(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample std (ddof=1) over seeds of every metric, in percent.

    Args:
        results: results rows (:data:`src.bench.schema.RESULT_COLUMNS`).

    Returns:
        One row per (benchmark, profile, detector, flags, train_set, test_set,
        level), in order of first appearance, with ``<metric>_mean``,
        ``<metric>_std`` (NaN for a single seed) and ``n_seeds``. ``flags`` is
        rewritten as sorted-key JSON.
    """
    return _aggregate(results, GROUP_KEYS)


# --------------------------------------------------------------------------- row labels


def _format_flags(flags: dict[str, Any]) -> str:
    parts = []
    for key, value in sorted(flags.items()):
        if isinstance(value, list | tuple):
            value = "+".join(map(str, value))
        parts.append(f"{key}={value}")
    return ", ".join(parts)


def _label_rows(rows: pd.DataFrame, consumed: Iterable[str], show_train_set: bool) -> pd.Series:
    """The row label of each results row: detector, plus what distinguishes its variants.

    ``consumed`` are flags that the table turns into rows or columns itself, so
    they must not split the rows again.
    """
    consumed = set(consumed)
    residual = rows["flags"].map(
        lambda f: {k: v for k, v in _flags_dict(f).items() if k not in consumed}
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


def _cells(
    agg: pd.DataFrame,
    row_keys: Sequence[str],
    column_of: Callable[[pd.Series, str], Any],
    metrics: Sequence[str],
) -> dict[tuple[Any, Any], Cell]:
    """Cells keyed by (row, column) from aggregated rows; a collision is an error."""
    cells: dict[tuple[Any, Any], Cell] = {}
    for _, group in agg.iterrows():
        row = tuple(group[k] for k in row_keys) if len(row_keys) > 1 else group[row_keys[0]]
        for metric in metrics:
            key = (row, column_of(group, metric))
            if key in cells:
                raise ValueError(
                    f"several result groups fall in the table cell {key}; filter the results "
                    "to one benchmark/profile (or give the variants distinct detector names)"
                )
            cells[key] = Cell(
                mean=float(group[f"{metric}_mean"]),
                std=float(group[f"{metric}_std"]),
                n=int(group["n_seeds"]),
            )
    return cells


def _assemble(
    cells: dict[tuple[Any, Any], Cell],
    rows: list[Any],
    columns: list[Any],
    index_names: Sequence[str],
    column_names: Sequence[str],
) -> pd.DataFrame:
    data = [[cells.get((r, c), EMPTY) for c in columns] for r in rows]
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
    interval: bool = False,
    load_predictions: PredictionsLoader | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """LAA-Net Table 1: rows = detectors, columns = (test set, metric).

    Args:
        results: results rows.
        level: ``"frame"`` or ``"video"``.
        metrics: metric columns under each test set.
        interval: add a bootstrap interval to the AUC cells (see
            :func:`add_intervals`); needs ``load_predictions``.
        load_predictions: maps a results row to its predictions (e.g.
            :func:`predictions_loader`).
        n_resamples, confidence, seed: passed to :func:`bootstrap_auc`.

    Returns:
        Cells indexed by detector; columns ``MultiIndex(test_set, metric)`` with
        the test sets in order of first appearance.
    """
    rows = _select_level(results, level)
    rows[_ROW] = _label_rows(rows, (), show_train_set=True)
    agg = _aggregate(rows, (_ROW, *GROUP_KEYS))
    cells = _cells(agg, (_ROW,), lambda g, m: (g["test_set"], m), metrics)
    test_sets = _unique_in_order(agg["test_set"])
    columns = [(t, m) for t in test_sets for m in metrics]
    table = _assemble(
        cells, _unique_in_order(agg[_ROW]), columns, ["detector"], ["test_set", "metric"]
    )
    if interval:
        if load_predictions is None:
            raise ValueError("interval=True needs load_predictions")
        table = add_intervals(
            table,
            results,
            level,
            load_predictions,
            n_resamples=n_resamples,
            confidence=confidence,
            seed=seed,
        )
    return table


def in_dataset_table(
    results: pd.DataFrame, level: str, metrics: Sequence[str] = ("acc", "auc")
) -> pd.DataFrame:
    """PANet Table I / Y-net Table II: rows = detectors, columns = (train set, metric).

    Only rows tested on their own training set (``test_set == train_set``) count,
    e.g. FF++ c23 and c40 side by side.
    """
    rows = _select_level(results, level)
    rows = rows[rows["test_set"] == rows["train_set"]].copy()
    rows[_ROW] = _label_rows(rows, (), show_train_set=False)
    agg = _aggregate(rows, (_ROW, *GROUP_KEYS))
    cells = _cells(agg, (_ROW,), lambda g, m: (g["train_set"], m), metrics)
    columns = [(t, m) for t in _unique_in_order(agg["train_set"]) for m in metrics]
    return _assemble(
        cells, _unique_in_order(agg[_ROW]), columns, ["detector"], ["train_set", "metric"]
    )


def _methods_label(flags: Any) -> str:
    methods = _flags_dict(flags).get("methods")
    if methods is None:
        return "all"
    if isinstance(methods, list | tuple):
        return "+".join(map(str, methods))
    return str(methods)


def cross_manipulation_table(
    results: pd.DataFrame, level: str, metric: str = "auc"
) -> pd.DataFrame:
    """Y-net Table III: rows = (detector, training manipulation), columns = test sets + avg.

    The training manipulation comes from ``flags["methods"]`` (a list is joined
    with ``+``; no flag means ``all``). ``avg`` is the mean over test sets per
    seed, then mean ± std over seeds, so its std is the spread of the average.
    """
    rows = _select_level(results, level)
    rows["train_method"] = rows["flags"].map(_methods_label)
    rows[_ROW] = _label_rows(rows, ("methods",), show_train_set=True)
    agg = _aggregate(rows, (_ROW, "train_method", *GROUP_KEYS))
    cells = _cells(agg, (_ROW, "train_method"), lambda g, m: g["test_set"], (metric,))

    # The average is taken within each seed before aggregating over seeds.
    per_seed = rows.groupby([_ROW, "train_method", "seed"], sort=False)[metric].mean()
    per_seed = per_seed.reset_index()
    per_seed["flags"] = "{}"
    avg = _aggregate(per_seed, (_ROW, "train_method"))
    for _, group in avg.iterrows():
        cells[((group[_ROW], group["train_method"]), "avg")] = Cell(
            mean=float(group[f"{metric}_mean"]),
            std=float(group[f"{metric}_std"]),
            n=int(group["n_seeds"]),
        )
    index = _unique_in_order(zip(agg[_ROW], agg["train_method"], strict=True))
    columns = [*_unique_in_order(agg["test_set"]), "avg"]
    return _assemble(cells, index, columns, ["detector", "train_method"], ["test_set"])


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


def robustness_table(results: pd.DataFrame, level: str, metric: str = "auc") -> pd.DataFrame:
    """LAA-Net Table 2: rows = detectors, columns = (perturbation, strength).

    The perturbation and its strength come from ``flags["test_perturbation"]``:
    a ``{class_path, init_args: {name, level}}`` object (or, in older results, a
    name with the level in ``flags["test_perturbation_level"]``); rows without a perturbation form
    the ``("clean", "")`` column, first. Strengths are strings, sorted
    numerically within each perturbation.
    """
    rows = _select_level(results, level)
    # Plain lists, not Series.map: pandas would turn integer strengths into floats.
    flags = [_flags_dict(f) for f in rows["flags"]]
    named = [_perturbation_flag(f) for f in flags]
    perturbation = [name or CLEAN for name, _ in named]
    strength = [level for _, level in named]
    rows["_perturbation"] = pd.Series(perturbation, index=rows.index, dtype=object)
    rows["_strength"] = [
        "" if p == CLEAN or s is None else str(s)
        for p, s in zip(perturbation, strength, strict=True)
    ]
    consumed = ("test_perturbation", "test_perturbation_level")
    rows[_ROW] = _label_rows(rows, consumed, show_train_set=True)
    agg = _aggregate(rows, (_ROW, "_perturbation", "_strength", *GROUP_KEYS))
    cells = _cells(agg, (_ROW,), lambda g, m: (g["_perturbation"], g["_strength"]), (metric,))
    perturbations = _unique_in_order(agg["_perturbation"])
    if CLEAN in perturbations:
        perturbations.remove(CLEAN)
        perturbations.insert(0, CLEAN)
    columns = []
    for p in perturbations:
        strengths = _unique_in_order(agg.loc[agg["_perturbation"] == p, "_strength"])
        columns += [(p, s) for s in sorted(strengths, key=_level_sort_key)]
    return _assemble(
        cells, _unique_in_order(agg[_ROW]), columns, ["detector"], ["perturbation", "level"]
    )


# --------------------------------------------------------------------------- bootstrap


def _video_histograms(
    predictions: pd.DataFrame, level: str
) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """Per-video positive and negative counts over the sorted distinct scores.

    Returns two (K, V) sparse matrices (K distinct scores ascending, V videos in
    sorted video-key order): entry (k, v) counts the fake (resp. real) samples
    of video v with the k-th smallest score. At video level each video is one
    sample scored by the mean of its frames.
    """
    if predictions.empty:
        raise ValueError("no predictions to bootstrap")
    if "set" in predictions.columns and predictions["set"].nunique() > 1:
        raise ValueError("predictions span several test sets; select one first")
    keys = predictions["video_key"].to_numpy()
    scores = predictions["score"].to_numpy(dtype=np.float64)
    labels = predictions["label"].to_numpy().astype(np.int64)
    if level == "video":
        _, scores, labels = video_scores(scores, labels, keys, "mean")
        video = np.arange(scores.size)
    elif level == "frame":
        _, video = np.unique(keys, return_inverse=True)
    else:
        raise ValueError(f"level must be 'frame' or 'video', got {level!r}")
    n_videos = int(video.max()) + 1
    distinct, score_idx = np.unique(scores, return_inverse=True)
    shape = (distinct.size, n_videos)

    def histogram(mask: np.ndarray) -> sparse.csr_matrix:
        ones = np.ones(int(mask.sum()))
        # coo -> csr sums the duplicate (score, video) entries into counts.
        return sparse.coo_matrix((ones, (score_idx[mask], video[mask])), shape=shape).tocsr()

    return histogram(labels == 1), histogram(labels == 0)


def n_videos(predictions: pd.DataFrame) -> int:
    """The number of distinct videos, i.e. the width of a counts matrix."""
    return int(predictions["video_key"].nunique())


def draw_video_counts(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of ``n`` videos is drawn in each of ``n_resamples`` bootstrap samples.

    Returns:
        An (n_resamples, n) integer matrix whose rows sum to ``n``.
    """
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples)


def auc_resamples(
    predictions: pd.DataFrame, level: str, counts: np.ndarray, max_cells: int = 4_000_000
) -> np.ndarray:
    """AUC of each bootstrap sample given how often each video was drawn.

    A drawn video contributes all its frames (frame level) or its mean score
    (video level), once per draw. Each AUC is the Mann-Whitney statistic with
    ties counting half, computed from histograms: with ``H+`` and ``H-`` the
    drawn positive and negative counts at each distinct score, a positive at
    score s beats the negatives below s and ties those at s, so
    ``AUC = sum_s H+(s) (H-(<s) + H-(s)/2) / (n+ n-)``. The histograms of all
    samples are one sparse-by-dense product with ``counts``; samples are taken
    in chunks only to bound memory (chunk x distinct scores <= ``max_cells``).

    Args:
        predictions: one test set's per-frame predictions (``video_key``,
            ``label``, ``score``).
        level: ``"frame"`` or ``"video"``.
        counts: (R, V) draws per video, videos in sorted ``video_key`` order
            (see :func:`draw_video_counts`).
        max_cells: memory bound of one chunk.

    Returns:
        R AUCs as fractions; NaN for a sample holding one class only.
    """
    positives, negatives = _video_histograms(predictions, level)
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[1] != positives.shape[1]:
        raise ValueError(f"counts must have shape (R, {positives.shape[1]}), got {counts.shape}")
    chunk = max(1, max_cells // max(1, positives.shape[0]))
    aucs = np.empty(counts.shape[0])
    for start in range(0, counts.shape[0], chunk):
        drawn = counts[start : start + chunk].T  # (V, r)
        pos = positives @ drawn  # (K, r): drawn positives at each distinct score
        neg = negatives @ drawn
        below = np.cumsum(neg, axis=0) - neg
        wins = np.sum(pos * (below + 0.5 * neg), axis=0)
        pairs = pos.sum(axis=0) * neg.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            aucs[start : start + chunk] = np.where(pairs > 0, wins / pairs, np.nan)
    return aucs


def bootstrap_auc(
    predictions: pd.DataFrame,
    level: str,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUC, resampling whole videos.

    Frames of one video are correlated, so videos (not frames) are drawn with
    replacement; see :func:`auc_resamples`. Samples that happen to hold one
    class only are dropped.

    Args:
        predictions: one test set's per-frame predictions.
        level: ``"frame"`` or ``"video"``.
        n_resamples: bootstrap samples.
        confidence: coverage of the interval.
        seed: seed of the draws (the same seed gives the same interval).

    Returns:
        ``(low, high)`` as fractions in [0, 1]; NaN if no sample had both classes.
    """
    rng = np.random.default_rng(seed)
    counts = draw_video_counts(n_videos(predictions), n_resamples, rng)
    return _interval(auc_resamples(predictions, level, counts), confidence)


def _interval(aucs: np.ndarray, confidence: float) -> tuple[float, float]:
    aucs = aucs[~np.isnan(aucs)]
    if aucs.size == 0:
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(aucs, [tail, 1.0 - tail])
    return float(low), float(high)


def predictions_loader(benchmark_dir: str | Path) -> PredictionsLoader:
    """Loads a results row's predictions from ``benchmark_dir / row["predictions"]``.

    Only the row's test set is kept (a cell's parquet holds every test set).
    """
    root = Path(benchmark_dir)

    def load(row: pd.Series) -> pd.DataFrame:
        frame = pd.read_parquet(root / row["predictions"])
        return frame[frame["set"] == row["test_set"]]

    return load


def add_intervals(
    table: pd.DataFrame,
    results: pd.DataFrame,
    level: str,
    load_predictions: PredictionsLoader,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Add bootstrap AUC intervals (percent) to the ``(test_set, "auc")`` cells of a table.

    ``table`` must come from :func:`cross_dataset_table` on the same
    ``results`` and ``level``. With several seeds the bootstrap AUCs of every
    seed's predictions are pooled before taking percentiles, so the interval
    covers both the test-set sampling and the seed-to-seed spread.
    """
    rows = _select_level(results, level)
    rows[_ROW] = _label_rows(rows, (), show_train_set=True)
    table = table.copy()
    for (label, test_set), runs in rows.groupby([_ROW, "test_set"], sort=False):
        column = (test_set, "auc")
        if column not in table.columns or label not in table.index:
            continue
        samples = []
        for i, (_, run) in enumerate(runs.iterrows()):
            predictions = load_predictions(run)
            rng = np.random.default_rng([seed, i])
            counts = draw_video_counts(n_videos(predictions), n_resamples, rng)
            samples.append(auc_resamples(predictions, level, counts))
        low, high = _interval(np.concatenate(samples), confidence)
        cell = table.at[label, column]
        table.at[label, column] = replace(cell, low=100.0 * low, high=100.0 * high)
    return table


# --------------------------------------------------------------------------- rendering


def _metric_of(column: Any) -> str | None:
    parts = column if isinstance(column, tuple) else (column,)
    for part in reversed(parts):
        if part in METRIC_NAMES:
            return part
    return None


def highlight_marks(table: pd.DataFrame) -> pd.DataFrame:
    """``"best"``, ``"second"`` or ``""`` for each cell, per column.

    Means are compared as displayed (rounded to two decimals), so cells that
    read the same are tied and marked alike. Higher is better except for EER.
    NaN is never marked, and a column with fewer than two values is left
    unmarked (nothing to compare).
    """
    marks = pd.DataFrame("", index=table.index, columns=table.columns, dtype=object)
    for j, column in enumerate(table.columns):
        means = np.array([cell.mean for cell in table.iloc[:, j]], dtype=np.float64)
        shown = np.round(means, 2)
        valid = ~np.isnan(shown)
        if valid.sum() < 2:
            continue
        sign = -1.0 if _metric_of(column) in LOWER_IS_BETTER else 1.0
        ranked = np.unique(sign * shown[valid])[::-1]  # distinct values, best first
        for value, mark in zip(ranked[:2], ("best", "second"), strict=False):
            marks.iloc[np.flatnonzero(valid & (sign * shown == value)), j] = mark
    return marks


def _column_title(column: Any) -> str:
    parts = column if isinstance(column, tuple) else (column,)
    return " ".join(METRIC_NAMES.get(str(p), str(p)) for p in parts if str(p) != "")


def _index_names(table: pd.DataFrame) -> list[str]:
    return [str(n) if n is not None else "" for n in table.index.names]


def _index_values(label: Any) -> list[str]:
    return [str(v) for v in label] if isinstance(label, tuple) else [str(label)]


def to_markdown(table: pd.DataFrame, highlight: bool = True) -> str:
    """A GitHub Markdown table; best per column ``**x**``, second ``<u>x</u>``."""
    marks = highlight_marks(table) if highlight else None
    wrap = {"best": "**{}**", "second": "<u>{}</u>", "": "{}"}
    header = [*_index_names(table), *(_column_title(c) for c in table.columns)]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * table.index.nlevels + ["---:"] * table.shape[1]) + "|",
    ]
    for i, label in enumerate(table.index):
        cells = [
            wrap[marks.iat[i, j] if marks is not None else ""].format(table.iat[i, j])
            for j in range(table.shape[1])
        ]
        lines.append("| " + " | ".join([*_index_values(label), *cells]) + " |")
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&")):
        text = text.replace(char, escaped)
    return text.replace("#", r"\#").replace("$", r"\$")


def _latex_cell(cell: Cell) -> str:
    return _latex_escape(str(cell)).replace("±", r"$\pm$")


def to_latex(table: pd.DataFrame, highlight: bool = True) -> str:
    """A booktabs ``tabular``; best per column ``\\textbf{x}``, second ``\\underline{x}``.

    Column levels above the last become ``\\multicolumn`` headers over their
    runs of columns, as in the papers.
    """
    marks = highlight_marks(table) if highlight else None
    wrap = {"best": r"\textbf{%s}", "second": r"\underline{%s}", "": "%s"}
    n_index = table.index.nlevels
    columns = [c if isinstance(c, tuple) else (c,) for c in table.columns]
    n_levels = len(columns[0]) if columns else 1
    lines = [r"\begin{tabular}{" + "l" * n_index + "c" * len(columns) + "}", r"\toprule"]
    for depth in range(n_levels - 1):
        # Group adjacent columns that share every header level down to this one.
        spans: list[tuple[tuple[Any, ...], int]] = []
        for c in columns:
            if spans and spans[-1][0] == c[: depth + 1]:
                spans[-1] = (spans[-1][0], spans[-1][1] + 1)
            else:
                spans.append((c[: depth + 1], 1))
        header, rules, first = [""] * n_index, [], n_index + 1
        for key, width in spans:
            title = _latex_escape(_column_title(key[-1]))
            header.append(title if width == 1 else rf"\multicolumn{{{width}}}{{c}}{{{title}}}")
            if width > 1 and title:
                rules.append(rf"\cmidrule(lr){{{first}-{first + width - 1}}}")
            first += width
        lines.append(" & ".join(header) + r" \\")
        lines += [" ".join(rules)] if rules else []
    last = [_latex_escape(n) for n in _index_names(table)]
    last += [_latex_escape(_column_title(c[-1])) for c in columns]
    lines += [" & ".join(last) + r" \\", r"\midrule"]
    for i, label in enumerate(table.index):
        cells = [
            wrap[marks.iat[i, j] if marks is not None else ""] % _latex_cell(table.iat[i, j])
            for j in range(table.shape[1])
        ]
        values = [_latex_escape(v) for v in _index_values(label)]
        lines.append(" & ".join([*values, *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_csv(table: pd.DataFrame) -> str:
    """Plain numbers: one column per table column (the mean, in percent).

    Columns are named by joining the column levels with ``/`` (e.g.
    ``cdf2/auc``); ``<name>/std`` follows where any cell has several seeds and
    ``<name>/low``, ``<name>/high`` where any cell has an interval.
    """
    out = table.index.to_frame(index=False).astype(object)
    for j, column in enumerate(table.columns):
        name = "/".join(str(p) for p in (column if isinstance(column, tuple) else (column,)))
        name = name.rstrip("/")
        cells = list(table.iloc[:, j])
        out[name] = [c.mean for c in cells]
        if any(c.n > 1 for c in cells):
            out[f"{name}/std"] = [c.std for c in cells]
        if any(not math.isnan(c.low) for c in cells):
            out[f"{name}/low"] = [c.low for c in cells]
            out[f"{name}/high"] = [c.high for c in cells]
    return out.to_csv(index=False)


def to_terminal(table: pd.DataFrame) -> str:
    """Aligned plain text; ``*`` after the best value of a column, ``_`` after the second."""
    marks = highlight_marks(table)
    suffix = {"best": "*", "second": "_", "": " "}
    columns = [c if isinstance(c, tuple) else (c,) for c in table.columns]
    n_levels = len(columns[0]) if columns else 1
    n_index = table.index.nlevels
    header_rows = [
        [""] * (n_index - 1)
        + [_index_names(table)[-1] if depth == n_levels - 1 else ""]
        + [
            METRIC_NAMES.get(str(c[depth]), str(c[depth]))
            # A header repeated over a run of columns is written once, on its first column.
            if depth == n_levels - 1 or k == 0 or columns[k - 1][: depth + 1] != c[: depth + 1]
            else ""
            for k, c in enumerate(columns)
        ]
        for depth in range(n_levels)
    ]
    if n_index > 1:
        header_rows[-1][:n_index] = _index_names(table)
    body = [
        _index_values(label)
        + [f"{table.iat[i, j]}{suffix[marks.iat[i, j]]}" for j in range(table.shape[1])]
        for i, label in enumerate(table.index)
    ]
    every = [*header_rows, *body]
    widths = [max(len(r[k]) for r in every) for k in range(len(every[0]))]

    def line(row: list[str]) -> str:
        left = [v.ljust(w) for v, w in zip(row[:n_index], widths, strict=False)]
        right = [v.rjust(w) for v, w in zip(row[n_index:], widths[n_index:], strict=True)]
        return "  ".join(left + right).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([*(line(r) for r in header_rows), rule, *(line(r) for r in body)]) + "\n"
