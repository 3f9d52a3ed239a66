"""Dataset indexers: a dataset's raw tree as distributed -> its video table.

One module per dataset registers its indexer under the dataset's short name
(``ffpp, cdf2, dfd, dfdc, dfdcp, dfw, df1``); :func:`build_video_table` runs one
and validates the result against :mod:`src.data.tables`::

    from src.data.indexers import build_video_table

    table = build_video_table("ffpp", "/data/FaceForensics++", compression=["c23", "c40"])

:func:`index_dataset` also returns what ``strict=False`` skipped, as a table.
The conventions every indexer shares (extra ``videos/`` levels, ``strict``,
pairing ids, absolute paths, containment, option checking) are in
:mod:`src.data.indexers.base`; each
module's docstring gives its dataset's layout and the decisions taken where
the official layout is silent.
"""

# The dataset modules are imported for their registration side effect.
from src.data.indexers import cdf2, df1, dfd, dfdc, dfdcp, dfw, ffpp  # noqa: F401
from src.data.indexers.base import (
    SKIPPED_COLUMNS,
    DatasetLayoutError,
    DatasetLayoutWarning,
    IndexResult,
    build_video_table,
    index_dataset,
    indexer_options,
    list_indexers,
    register_indexer,
)
from src.data.paths import UnsafePathError

__all__ = [
    "SKIPPED_COLUMNS",
    "DatasetLayoutError",
    "DatasetLayoutWarning",
    "IndexResult",
    "UnsafePathError",
    "build_video_table",
    "index_dataset",
    "indexer_options",
    "list_indexers",
    "register_indexer",
]
