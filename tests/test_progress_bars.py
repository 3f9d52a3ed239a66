"""Progress bars redraw in a terminal and write a line per half minute to a log file."""

from __future__ import annotations

import io

from src.progress_bars import LOG_INTERVAL, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_the_final_count_without_a_redraw_per_item() -> None:
    log = io.StringIO()
    bar = progress_bar(range(500), file=log, desc="preprocess ffpp", unit="video")
    assert bar.mininterval == LOG_INTERVAL
    assert sum(1 for _ in bar) == 500
    bar.close()
    text = log.getvalue()
    assert "500/500" in text
    # The first draw (0/500) and the final count: nothing in between in under 30 s.
    assert text.count("preprocess ffpp") <= 3


def test_a_terminal_keeps_tqdm_redraws_and_explicit_settings_win() -> None:
    assert progress_bar(range(3), file=Terminal()).mininterval == 0.1
    assert progress_bar(range(3), file=io.StringIO(), mininterval=1.0).mininterval == 1.0
