"""Paper-shaped tables on a hand-made results set, and their renderings."""

from __future__ import annotations

import io
import math
import re

import pandas as pd
import pytest
from bench_data import cross_dataset_results, result

from src.bench.render import (
    highlight_marks,
    marks_legend,
    terminal_style,
    to_csv,
    to_latex,
    to_markdown,
    to_terminal,
)
from src.bench.tables import (
    TableEntry,
    aggregate,
    cross_dataset_table,
    cross_manipulation_table,
    in_dataset_table,
    robustness_table,
)

NAN = float("nan")


def strings(table: pd.DataFrame) -> list[list[str]]:
    return [[str(entry) for entry in row] for row in table.to_numpy()]


# --------------------------------------------------------------------------- aggregate


def test_aggregate_mean_std_percent_and_seed_count():
    agg = aggregate(cross_dataset_results())
    row = agg[(agg.detector == "xception") & (agg.test_set == "cdf2") & (agg.level == "frame")]
    assert len(row) == 1
    row = row.iloc[0]
    assert row["auc_mean"] == pytest.approx(71.0)
    assert row["auc_std"] == pytest.approx(math.sqrt(2.0))
    assert row["n_seeds"] == 2
    sbi = agg[(agg.detector == "sbi") & (agg.level == "frame")].iloc[0]
    assert sbi["n_seeds"] == 1 and math.isnan(sbi["auc_std"])
    assert len(agg) == 14  # 7 (detector, test set) pairs x 2 levels


def test_aggregate_groups_equal_flags_written_differently():
    rows = pd.DataFrame(
        [
            result("d", "t", 0, auc=0.5) | {"flags": '{"a": 1, "b": 2}'},
            result("d", "t", 1, auc=0.7) | {"flags": '{"b": 2, "a": 1}'},
        ]
    )
    agg = aggregate(rows)
    assert len(agg) == 1 and agg["n_seeds"].iloc[0] == 2
    assert agg["flags"].iloc[0] == '{"a": 1, "b": 2}'


# --------------------------------------------------------------------------- cross-dataset


def test_cross_dataset_table_entries_and_shape():
    table = cross_dataset_table(cross_dataset_results(), "frame", metrics=("auc", "ap", "eer"))
    assert list(table.index) == ["xception", "effnet", "laa_net", "sbi"]
    assert list(table.columns) == [
        ("cdf2", "auc"),
        ("cdf2", "ap"),
        ("cdf2", "eer"),
        ("dfdc", "auc"),
        ("dfdc", "ap"),
        ("dfdc", "eer"),
    ]
    assert table.columns.names == ["test_set", "metric"]
    assert strings(table) == [
        ["71.00 ± 1.41", "80.00 ± 0.00", "31.00 ± 1.41", "62.00 ± 2.83", "61.00 ± 1.41",
         "40.00 ± 0.00"],
        ["76.00 ± 1.41", "86.00 ± 1.41", "26.00 ± 1.41", "62.00 ± 2.83", "62.00 ± 1.41",
         "36.00 ± 1.41"],
        ["81.00 ± 1.41", "91.00 ± 1.41", "21.00 ± 1.41", "-", "-", "-"],
        ["90.00", "95.00", "24.00", "-", "-", "-"],
    ]  # fmt: skip


def test_highlight_marks_ties_nan_and_eer():
    table = cross_dataset_table(cross_dataset_results(), "frame", metrics=("auc", "ap", "eer"))
    marks = highlight_marks(table).to_numpy().tolist()
    assert marks == [
        ["", "", "", "best", "second", "second"],
        ["", "", "", "best", "best", "best"],
        ["second", "second", "best", "", "", ""],
        ["best", "best", "second", "", "", ""],
    ]


def test_markdown_exact():
    table = cross_dataset_table(cross_dataset_results(), "frame", metrics=("auc", "ap", "eer"))
    expected = (
        "| detector | cdf2 AUC | cdf2 AP | cdf2 EER | dfdc AUC | dfdc AP | dfdc EER |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n"
        "| xception | 71.00 ± 1.41 | 80.00 ± 0.00 | 31.00 ± 1.41 | **62.00 ± 2.83** "
        "| <u>61.00 ± 1.41</u> | <u>40.00 ± 0.00</u> |\n"
        "| effnet | 76.00 ± 1.41 | 86.00 ± 1.41 | 26.00 ± 1.41 | **62.00 ± 2.83** "
        "| **62.00 ± 1.41** | **36.00 ± 1.41** |\n"
        "| laa_net | <u>81.00 ± 1.41</u> | <u>91.00 ± 1.41</u> | **21.00 ± 1.41** | - | - | - |\n"
        "| sbi | **90.00** | **95.00** | <u>24.00</u> | - | - | - |\n"
    )
    assert to_markdown(table) == expected
    plain = to_markdown(table, highlight=False)
    assert "**" not in plain and "<u>" not in plain


def test_latex_markup_and_headers():
    table = cross_dataset_table(cross_dataset_results(), "frame")
    latex = to_latex(table)
    lines = latex.splitlines()
    assert lines[0] == r"\begin{tabular}{lcccc}"
    assert lines[2] == r" & \multicolumn{2}{c}{cdf2} & \multicolumn{2}{c}{dfdc} \\"
    assert lines[3] == r"\cmidrule(lr){2-3} \cmidrule(lr){4-5}"
    assert lines[4] == r"detector & AUC & AP & AUC & AP \\"
    assert r"sbi & \textbf{90.00} & \textbf{95.00} & - & - \\" in lines
    assert (
        r"laa\_net & \underline{81.00 $\pm$ 1.41} & \underline{91.00 $\pm$ 1.41} & - & - \\"
        in lines
    )
    assert r"\textbf" not in to_latex(table, highlight=False)


def test_csv_plain_numbers():
    table = cross_dataset_table(cross_dataset_results(), "frame")
    frame = pd.read_csv(io.StringIO(to_csv(table)))
    assert list(frame.columns) == [
        "detector",
        "cdf2/auc",
        "cdf2/auc/std",
        "cdf2/ap",
        "cdf2/ap/std",
        "dfdc/auc",
        "dfdc/auc/std",
        "dfdc/ap",
        "dfdc/ap/std",
    ]
    assert frame["cdf2/auc"].tolist() == pytest.approx([71.0, 76.0, 81.0, 90.0])
    assert math.isnan(frame["dfdc/auc"].iloc[2])
    assert "*" not in to_csv(table) and "±" not in to_csv(table)


def test_terminal_markers_and_alignment():
    table = cross_dataset_table(cross_dataset_results(), "frame")
    text = to_terminal(table)
    lines = text.splitlines()
    assert len({len(line) for line in lines[2:]}) <= 2  # rows aligned (trailing space trimmed)
    assert "90.00 (1)" in text and "81.00 ± 1.41 (2)" in text and "62.00 ± 2.83 (1)" in text
    assert "*" not in text and "_" not in text.replace("laa_net", "")  # no Markdown markers
    assert lines[0].split() == ["cdf2", "dfdc"]
    assert lines[1].split() == ["detector", "AUC", "AP", "AUC", "AP"]


def test_terminal_ansi_marks_keep_the_alignment():
    table = cross_dataset_table(cross_dataset_results(), "frame")
    ansi = to_terminal(table, "ansi")
    assert "\x1b[1m90.00\x1b[22m" in ansi  # sbi's cdf2 AUC: best, bold
    assert "\x1b[4m81.00 ± 1.41\x1b[24m" in ansi  # laa_net's: second, underlined
    assert "\x1b[1m62.00 ± 2.83\x1b[22m" in ansi  # a tie: both best
    # The escapes take no room: without them, the columns line up under the rule.
    visible = re.sub(r"\x1b\[\d+m", "", ansi).splitlines()
    rule = visible[2]
    assert set(rule) == {"-", " "} and "(1)" not in "".join(visible)
    assert max(len(line) for line in visible) == len(rule)
    assert visible[3].endswith("61.00 ± 1.41") and len(visible[3]) == len(rule)  # xception
    assert visible[0].split() == ["cdf2", "dfdc"]
    with pytest.raises(ValueError, match="style"):
        to_terminal(table, "markdown")


class Stream:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("tty", "environ", "style"),
    [
        (True, {}, "ansi"),
        (True, {"NO_COLOR": "1"}, "plain"),
        (True, {"NO_COLOR": ""}, "ansi"),  # no-color.org: only a non-empty value counts
        (False, {}, "plain"),
        (False, {"NO_COLOR": "1"}, "plain"),
    ],
)
def test_terminal_style_follows_tty_and_no_color(tty, environ, style):
    assert terminal_style(Stream(tty), environ) == style
    assert ("\x1b[1m" in marks_legend(style)) == (style == "ansi")


def test_flag_variants_and_train_sets_split_rows():
    rows = pd.DataFrame(
        [
            result("laa_net", "cdf2", 0, flags={"efpn": True}, auc=0.8),
            result("laa_net", "cdf2", 0, flags={"efpn": False}, auc=0.7),
            result("xception", "cdf2", 0, auc=0.6, train_set="ffpp_c40"),
        ]
    )
    table = cross_dataset_table(rows, "frame", metrics=("auc",))
    assert list(table.index) == [
        "laa_net (efpn=True) [ffpp_c23]",
        "laa_net (efpn=False) [ffpp_c23]",
        "xception [ffpp_c40]",
    ]


def test_colliding_entries_raise():
    rows = pd.DataFrame(
        [result("x", "cdf2", 0, auc=0.8), result("x", "cdf2", 0, auc=0.7) | {"profile": "paper"}]
    )
    with pytest.raises(ValueError, match="filter"):
        cross_dataset_table(rows, "frame")


# --------------------------------------------------------------------------- other tables


def test_in_dataset_table():
    rows = pd.DataFrame(
        [
            result("xception", "ffpp_c23", s, train_set="ffpp_c23", acc=a, auc=u)
            for s, (a, u) in enumerate([(0.90, 0.95), (0.92, 0.97)])
        ]
        + [result("xception", "ffpp_c40", 0, train_set="ffpp_c40", acc=0.8, auc=0.85)]
        + [result("xception", "cdf2", 0, train_set="ffpp_c23", acc=0.1, auc=0.1)]
    )
    table = in_dataset_table(rows, "frame")
    assert list(table.index) == ["xception"]
    assert list(table.columns) == [
        ("ffpp_c23", "acc"),
        ("ffpp_c23", "auc"),
        ("ffpp_c40", "acc"),
        ("ffpp_c40", "auc"),
    ]
    assert strings(table) == [["91.00 ± 1.41", "96.00 ± 1.41", "80.00", "85.00"]]


def test_cross_manipulation_table_with_avg():
    runs = {
        "Deepfakes": {"ffpp_df": (0.99, 0.97), "ffpp_f2f": (0.60, 0.62)},
        "Face2Face": {"ffpp_df": (0.70, 0.70), "ffpp_f2f": (0.95, 0.97)},
    }
    rows = pd.DataFrame(
        [
            result("ynet", test_set, seed, flags={"methods": [method]}, auc=auc)
            for method, tests in runs.items()
            for test_set, aucs in tests.items()
            for seed, auc in enumerate(aucs)
        ]
    )
    table = cross_manipulation_table(rows, "frame")
    assert list(table.index) == [("ynet", "Deepfakes"), ("ynet", "Face2Face")]
    assert table.index.names == ["detector", "train_method"]
    assert list(table.columns) == ["ffpp_df", "ffpp_f2f", "avg"]
    assert strings(table) == [
        ["98.00 ± 1.41", "61.00 ± 1.41", "79.50 ± 0.00"],
        ["70.00 ± 0.00", "96.00 ± 1.41", "83.00 ± 0.71"],
    ]
    markdown = to_markdown(table)
    assert "| ynet | Deepfakes | **98.00 ± 1.41** | <u>61.00 ± 1.41</u> |" in markdown


def perturbation_flag(name: str, level: int) -> dict:
    """A grid's test perturbation as the runner records it: the object's class_path/init_args."""
    return {
        "test_perturbation": {
            "class_path": "src.augment.Perturbation",
            "init_args": {"name": name, "level": level},
        }
    }


def test_robustness_table():
    settings = [
        ({}, 0.90, 0.80),
        ({"test_perturbation": "blur", "test_perturbation_level": 10}, 0.60, 0.65),
        (perturbation_flag("blur", 3), 0.80, 0.70),
        (perturbation_flag("noise", 1), 0.85, 0.85),
    ]
    rows = pd.DataFrame(
        [
            result(detector, "ffpp_c23", 0, flags=flags, auc=auc)
            for flags, *aucs in settings
            for detector, auc in zip(("xception", "effnet"), aucs, strict=True)
        ]
    )
    table = robustness_table(rows, "frame")
    assert list(table.index) == ["xception", "effnet"]
    assert list(table.columns) == [("clean", ""), ("blur", "3"), ("blur", "10"), ("noise", "1")]
    assert strings(table) == [
        ["90.00", "80.00", "60.00", "85.00"],
        ["80.00", "70.00", "65.00", "85.00"],
    ]
    assert highlight_marks(table).iloc[:, 3].tolist() == ["best", "best"]
    assert to_markdown(table).splitlines()[0] == (
        "| detector | clean | blur 3 | blur 10 | noise 1 |"
    )


def test_entry_formatting():
    assert str(TableEntry(12.3456, NAN, 1)) == "12.35"
    assert str(TableEntry(12.3456, 0.5, 1)) == "12.35"  # one seed: no std even if given
    assert str(TableEntry(1.0, 0.5, 3)) == "1.00 ± 0.50"
    assert str(TableEntry()) == "-"
