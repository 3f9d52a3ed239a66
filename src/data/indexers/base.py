"""The indexer registry and what every dataset indexer shares.

An indexer reads one dataset's raw tree, as its authors distribute it, and
returns the rows of its video table (:func:`src.data.tables.video_table`).
Each dataset module registers one under the dataset's short name::

    @register_indexer("cdf2")
    def index_cdf2(root: Path, *, val_fraction: float = 0.0, strict: bool = True) -> list[dict]:
        ...

    table = build_video_table("cdf2", "/data/Celeb-DF-v2", val_fraction=0.1)

Conventions that hold for every dataset (decided once, here):

* **Extra ``videos/`` level.** Wherever a folder is expected to hold videos
  (or WildDeepfake archives), they may also sit one level down in a ``videos/``
  subfolder of it (FF++ ships ``c23/videos/000.mp4``; many copies of the other
  datasets are rearranged the same way). :func:`video_dir` picks whichever exists.
* **Strictness.** A video named by an official split or list file but absent
  on disk raises :class:`DatasetLayoutError` when ``strict`` (the default), since
  a silently shorter test set changes the numbers; with ``strict=False`` it is
  skipped and a :class:`DatasetLayoutWarning` names it. A missing dataset root,
  a missing or malformed list file is always an error.
* **Pairing ids.** Where a dataset says which real video a fake was made from,
  the fake's ``target_id`` is that real's id and each real's ``target_id`` is its
  own id, so grouping by ``target_id`` pairs a real with its fakes (Mask-SSIM
  needs that). Elsewhere both ids are ``""``.
* **Paths** are absolute but not resolved: symbolic links stay as the user
  wrote them, so a table stays valid when a dataset disk is re-linked.
* **Containment.** A path named by a dataset's own file (a list line, a JSON
  entry, a tar member) must be relative, without ``..`` parts, and stay inside
  the root (:func:`listed_path`, :func:`file_name`); ``../x.mp4``, ``a/../x.mp4``
  or ``/abs/x.mp4`` is an :class:`~src.data.paths.UnsafePathError` naming the
  file and line or entry, never rewritten.
  Two rows naming one source file are an error naming both.
* **Options** are checked against the indexer's signature before it runs
  (:func:`check_options`): an unknown name, or a value of the wrong type or
  out of range, is a one-line ``ValueError`` naming the option and what it takes.
* **Skips.** Under ``strict=False`` each skipped video, folder or archive
  member is warned about and, through :func:`index_dataset`, listed in a table
  (``path, listed_in, reason``) that a caller can save beside the video table.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import typing
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from src.data.options import describe, matches
from src.data.paths import UnsafePathError, inside, no_parent_parts
from src.data.tables import SPLITS, video_table
from src.errors import DFBenchError
from src.files import VIDEO_SUFFIXES
from src.registry import Registry

COMPRESSIONS = ("raw", "c23", "c40")
_COMPRESSION_ALIASES = {"c0": "raw", "hq": "c23", "lq": "c40"}
#: When one video is listed under several splits it is kept in the most held-out
#: one: a test video must never be trained on or used to choose a checkpoint.
HELD_OUT_ORDER = ("test", "val", "train")
#: How many missing videos a message names before it says "and N more".
_SHOWN = 10

Indexer = Callable[..., Iterable[dict[str, Any]]]
INDEXERS: Registry[Indexer] = Registry("dataset indexer")

#: Decorator: register ``fn(root: Path, **options) -> rows`` as the indexer of a dataset.
register_indexer = INDEXERS.register


class DatasetLayoutError(DFBenchError):
    """A dataset tree that does not match its documented layout.

    The message always names the path and what was expected there:
    ``"<path>: <problem>; expected <what>"``.
    """

    def __init__(self, path: str | Path, expected: str, problem: str = "not found") -> None:
        self.path = Path(path)
        self.expected = expected
        self.problem = problem
        super().__init__(f"{path}: {problem}; expected {expected}")


class DatasetLayoutWarning(UserWarning):
    """Something absent from a dataset tree was skipped (``strict=False``)."""


def list_indexers() -> list[str]:
    """Names of every registered indexer, sorted."""
    return INDEXERS.names()


def get_indexer(name: str) -> Indexer:
    return INDEXERS.get(name)


def indexer_options(name: str) -> list[str]:
    """The keyword options the indexer of ``name`` accepts."""
    parameters = list(inspect.signature(get_indexer(name)).parameters.values())[1:]
    return [p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]


def check_options(name: str, options: dict[str, Any]) -> None:
    """Refuse an option the indexer of ``name`` lacks, or a value its annotation does not allow.

    The indexer's signature is the schema: ``val_fraction: Annotated[float,
    Interval(0, 1, high_open=True)]`` allows a number in [0, 1), ``mode:
    Literal["auto", ...]`` one of those names, ``str | Sequence[str]`` a name
    or a list of names (see :mod:`src.data.options`).

    Raises:
        ValueError: ``"cdf2: option val_fraction must be a number in [0, 1), got 'abc'"``.
    """
    indexer = get_indexer(name)
    known = indexer_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise DFBenchError(
            f"dataset {name!r} has no option {', '.join(unknown)}; its options: {', '.join(known)}"
        )
    hints = typing.get_type_hints(indexer, include_extras=True)
    for option, value in options.items():
        hint = hints.get(option, Any)
        if not matches(value, hint):
            raise DFBenchError(f"{name}: option {option} must be {describe(hint)}, got {value!r}")


@dataclass(frozen=True)
class IndexResult:
    """A dataset's video table and what ``strict=False`` skipped (``path, listed_in, reason``)."""

    videos: pd.DataFrame
    skipped: pd.DataFrame


SKIPPED_COLUMNS = ("path", "listed_in", "reason")
_SKIPS: ContextVar[list[dict[str, str]] | None] = ContextVar("dfbench_index_skips", default=None)


def record_skip(path: str | Path, reason: str, listed_in: str | Path = "") -> None:
    """Note one thing ``strict=False`` skipped, for :func:`index_dataset`'s table of skips."""
    found = _SKIPS.get()
    if found is not None:
        found.append({"path": str(path), "listed_in": str(listed_in), "reason": reason})


def index_dataset(name: str, root: str | Path, **options: Any) -> IndexResult:
    """Index dataset ``name`` under ``root``: its validated video table and a table of skips.

    With ``strict=False`` each video, folder or archive that was skipped is one
    row of ``skipped`` (and one warning, as before), so a caller can save the
    list beside the table instead of leaving it in a terminal's scroll-back.

    Args:
        name: a registered indexer (:func:`list_indexers`).
        root: the dataset's top folder as unpacked.
        **options: the indexer's own options (see its module), e.g. ``strict=False``.

    Raises:
        DatasetLayoutError: the tree does not match the dataset's layout.
        ValueError: an option the indexer does not have, or a bad option value.
    """
    indexer = get_indexer(name)
    check_options(name, options)
    root = absolute(root)
    require_dir(root, f"the {name} dataset root folder")
    skips: list[dict[str, str]] = []
    token = _SKIPS.set(skips)
    try:
        rows = list(indexer(root, **options))
    finally:
        _SKIPS.reset(token)
    if not rows:
        raise DatasetLayoutError(root, f"the {name} layout (see src/data/indexers)", "no videos")
    videos = video_table(rows, name=f"{name} video table")
    return IndexResult(videos, pd.DataFrame(skips, columns=list(SKIPPED_COLUMNS)))


def build_video_table(name: str, root: str | Path, **options: Any) -> pd.DataFrame:
    """Index dataset ``name`` under ``root`` and return its validated video table.

    :func:`index_dataset` without the table of skips; same arguments and errors.
    """
    return index_dataset(name, root, **options).videos


# ------------------------------------------------------------------ paths
def absolute(path: str | Path) -> Path:
    """``path`` made absolute and normalised without resolving symbolic links."""
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def require_dir(path: Path, expected: str) -> Path:
    if not path.is_dir():
        raise DatasetLayoutError(path, expected, "not a folder" if path.exists() else "not found")
    return path


def require_file(path: Path, expected: str) -> Path:
    if not path.is_file():
        raise DatasetLayoutError(path, expected, "not a file" if path.exists() else "not found")
    return path


def read_json(path: Path, expected: str, kind: type | None = None) -> Any:
    """Parse a dataset's JSON file; every problem is a DatasetLayoutError naming it.

    With ``kind=dict`` the top level must be a JSON object.
    """
    require_file(path, expected)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetLayoutError(path, expected, f"not valid JSON ({error})") from None
    if kind is dict and not isinstance(data, dict):
        raise DatasetLayoutError(path, expected, "not a JSON object")
    return data


def video_dir(folder: Path) -> Path:
    """The folder that holds ``folder``'s videos: ``folder/videos`` if there is one, else itself."""
    nested = folder / "videos"
    return nested if nested.is_dir() else folder


def scan_videos(
    folder: Path, expected: str, extensions: Iterable[str] = VIDEO_SUFFIXES
) -> dict[str, Path]:
    """Map stem -> path of the files in ``folder`` (or its ``videos/``) with those extensions.

    Raises:
        DatasetLayoutError: ``folder`` does not exist.
    """
    require_dir(folder, expected)
    where = video_dir(folder)
    extensions = frozenset(extensions)
    found: dict[str, Path] = {}
    # One listing per folder: FF++ lookups stay cheap on network file systems.
    for entry in sorted(os.scandir(where), key=lambda e: e.name):
        path = Path(entry.path)
        if path.suffix.lower() in extensions and entry.is_file():
            found.setdefault(path.stem, path)
    return found


def scan_or_skip(folder: Path, expected: str, strict: bool) -> dict[str, Path] | None:
    """:func:`scan_videos`, or ``None`` with a warning when the folder is absent and not strict."""
    try:
        return scan_videos(folder, expected)
    except DatasetLayoutError as error:
        if strict:
            raise
        warnings.warn(f"skipped: {error}", DatasetLayoutWarning, stacklevel=3)
        record_skip(error.path, f"{error.problem}; expected {error.expected}")
        return None


def listed_path(root: Path, relative: str, where: str) -> PurePosixPath:
    """A path named by a dataset's own file, relative to ``root`` and checked to stay inside it.

    ``/abs/x.mp4``, ``C:\\x.mp4`` and any path with a ``..`` part (``../x.mp4``, and
    ``a/../b/x.mp4`` too, rather than quietly reading it as ``b/x.mp4``) are refused.

    Raises:
        UnsafePathError: the path is absolute, has a ``..`` part or names the root;
            the message starts with ``where``.
    """
    text = relative.replace("\\", "/")
    if PurePosixPath(text).is_absolute() or (len(text) > 1 and text[1] == ":"):
        raise UnsafePathError(f"{where}: {relative!r} is absolute; expected a path inside {root}")
    resolved = inside(root, text, where)
    no_parent_parts(relative, where)
    if resolved == root:
        raise UnsafePathError(f"{where}: {relative!r} names the dataset root, not a file in it")
    return PurePosixPath(resolved.relative_to(root).as_posix())


def file_name(name: str, where: str) -> str:
    """``name`` if it is a plain file name (what DFDC's files list), else an error naming ``where``."""
    if not name or "\x00" in name or "/" in name or "\\" in name or name in (".", ".."):
        raise UnsafePathError(f"{where}: {name!r} is not a plain file name")
    return name


def find_file(base: Path, relative: str | PurePosixPath) -> Path | None:
    """``base/relative`` or the same file with a ``videos/`` level inserted anywhere in it.

    ``relative`` must already be checked (:func:`listed_path`): it is joined as is.
    """
    parts = PurePosixPath(str(relative).replace("\\", "/")).parts
    candidates = [base.joinpath(*parts)]
    # Innermost first: `method_A/videos/x.mp4` is likelier than `videos/method_A/x.mp4`.
    candidates += [
        base.joinpath(*parts[:i], "videos", *parts[i:]) for i in reversed(range(len(parts)))
    ]
    return next((c for c in candidates if c.is_file()), None)


def read_lines(path: Path, expected: str) -> list[tuple[int, str]]:
    """The non-blank lines of a list file with their 1-based line numbers."""
    require_file(path, expected)
    text = path.read_text(encoding="utf-8-sig")
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


# ------------------------------------------------------------------ options
def as_list(value: str | Sequence[str] | None) -> list[str]:
    """A single name or a sequence of names as a list (``None`` -> ``[]``)."""
    if value is None:
        return []
    if isinstance(value, str | os.PathLike):
        return [str(value)]
    return [str(v) for v in value]


def as_compressions(value: str | Sequence[str]) -> list[str]:
    """Compression levels ``raw, c23, c40`` (also ``c0``, ``HQ``, ``LQ``), deduplicated."""
    levels: list[str] = []
    for item in as_list(value):
        level = _COMPRESSION_ALIASES.get(item.lower(), item.lower())
        if level not in COMPRESSIONS:
            raise DFBenchError(f"unknown compression {item!r}; expected one of {COMPRESSIONS}")
        if level not in levels:
            levels.append(level)
    if not levels:
        raise DFBenchError(f"no compression level given; expected some of {COMPRESSIONS}")
    return levels


def check_split(split: str, where: str) -> str:
    if split not in SPLITS:
        raise DFBenchError(f"{where}: unknown split {split!r}; expected one of {SPLITS}")
    return split


def deterministic_subset(names: Iterable[str], fraction: float, salt: str) -> set[str]:
    """``round(fraction * n)`` of ``names``, the same ones on every machine and run.

    Names are ordered by a hash rather than drawn from a seeded generator, so
    adding or removing one name moves at most one other in or out.
    """
    if not 0.0 <= fraction < 1.0:
        raise DFBenchError(f"fraction must be in [0, 1), got {fraction}")
    unique = sorted(set(names))

    def rank(name: str) -> str:
        return hashlib.sha1(f"{salt}/{name}".encode()).hexdigest()

    return set(sorted(unique, key=rank)[: round(fraction * len(unique))])


# ------------------------------------------------------------------ rows
def video_row(
    dataset: str,
    key: Sequence[str],
    path: str | Path,
    *,
    label: int,
    split: str,
    method: str,
    compression: str = "",
    mask_path: str | Path = "",
    source_id: str = "",
    target_id: str = "",
) -> dict[str, Any]:
    """One video-table row; the key is ``dataset/<key parts joined by '/'>``."""
    return {
        "video_key": "/".join((dataset, *key)),
        "path": str(path),
        "label": int(label),
        "split": split,
        "dataset": dataset,
        "method": method,
        "compression": compression,
        "mask_path": str(mask_path) if mask_path else "",
        "source_id": source_id,
        "target_id": target_id,
    }


class MissingVideos:
    """Videos named by a list file but absent: an error when strict, else one warning per list.

    Collected first and reported together, so the message says how many are
    missing rather than stopping at the first.
    """

    def __init__(self, dataset: str, strict: bool) -> None:
        self.dataset = dataset
        self.strict = strict
        self.paths: dict[str, list[Path]] = {}

    def add(self, path: Path, listed_in: str | Path) -> None:
        self.paths.setdefault(str(listed_in), []).append(path)

    def report(self) -> None:
        for listed_in, paths in self.paths.items():
            shown = ", ".join(str(p) for p in paths[:_SHOWN])
            if len(paths) > _SHOWN:
                shown += f" and {len(paths) - _SHOWN} more"
            if self.strict:
                others = paths[1:]
                problem = "missing (strict=False skips it)"
                if others:
                    more = ", ".join(str(p) for p in others[:_SHOWN])
                    more += f" and {len(others) - _SHOWN} more" if len(others) > _SHOWN else ""
                    problem = (
                        f"missing, as are {len(others)} more listed videos ({more}); "
                        "strict=False skips them"
                    )
                raise DatasetLayoutError(paths[0], f"the video named in {listed_in}", problem)
            for path in paths:
                record_skip(path, "named in the list but missing", listed_in)
            warnings.warn(
                f"{self.dataset}: skipped {len(paths)} videos named in {listed_in} "
                f"but missing: {shown}",
                DatasetLayoutWarning,
                stacklevel=3,
            )
