"""Atomic writes: the file mode a plain open() gives, and a durable rename."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import src.files as files
from src.files import atomic_write, atomic_write_text, current_umask


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test, then restore it."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield lambda value: os.umask(value)
    os.umask(saved)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_file_gets_the_umask_mode(tmp_path: Path, umask, mask: int, expected: int) -> None:
    umask(mask)
    assert current_umask() == mask
    written = atomic_write_text(tmp_path / "table.md", "x")
    with open(tmp_path / "plain.md", "w") as handle:  # the reference: what open() does
        handle.write("x")
    assert mode(written) == mode(tmp_path / "plain.md") == expected
    assert not list(tmp_path.glob(".*.tmp"))


def test_replaced_file_keeps_its_mode(tmp_path: Path, umask) -> None:
    umask(0o022)
    path = tmp_path / "results.csv"
    path.write_text("old")
    path.chmod(0o640)
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and mode(path) == 0o640


def test_umask_fallback_without_proc(monkeypatch: pytest.MonkeyPatch, umask) -> None:
    """Where /proc is missing the umask is read once by setting and restoring it."""

    def no_proc(*args, **kwargs):
        raise OSError("no /proc here")

    umask(0o027)
    monkeypatch.setattr(files, "open", no_proc, raising=False)
    monkeypatch.setattr(files, "_umask_fallback", None)
    assert current_umask() == 0o027
    assert os.umask(0o027) == 0o027  # restored


@pytest.mark.parametrize("durable", [True, False])
def test_durable_write_syncs_file_and_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    atomic_write(tmp_path / "status.json", lambda handle: handle.write(b"{}"), durable=durable)
    assert synced == (["file", "dir"] if durable else [])
