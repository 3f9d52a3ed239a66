"""Upstream messages that tell a dfbench user nothing, silenced one by one at their source.

Each filter names the message, its category and the module that emits it, so
any other warning (from the same modules included) still shows:

* Lightning's tips to install litlogger / litmodels (an advert on every run);
* torch's deprecation of ``isinstance(treespec, LeafSpec)``, raised by
  Lightning's own pytree helper on every batch transfer, which no user code
  can fix;
* LightningCLI's note that ``args`` was given while ``sys.argv`` holds
  arguments: dfbench always passes the arguments it parsed itself (without
  ``--debug``), deliberately.

Lightning's "dirpath has changed" (a resumed run) and "Checkpoint directory
exists and is not empty" are avoided where they are expected
(src/cli/checkpoints.py), and our own epoch-level logs are synchronised under
DDP (src/detectors/base.py), so Lightning has nothing to recommend.
"""

from __future__ import annotations

import logging
import warnings

#: Lightning's adverts, logged with rank_zero_info.
_TIPS = ("💡 Tip: For seamless cloud",)
_RANK_ZERO_LOGGERS = (
    "pytorch_lightning.utilities.rank_zero",
    "lightning_fabric.utilities.rank_zero",
)


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_TIPS)


_DROP_TIPS = _DropTips()


def install() -> None:
    """Add the filters (idempotent: warnings dedupes filters, the log filter is one object)."""
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
        module=r"pytorch_lightning\.utilities\._pytree",
    )
    warnings.filterwarnings(
        "ignore",
        message=r"LightningCLI's args parameter is intended to run from within Python",
        category=UserWarning,
        module=r"pytorch_lightning\.cli",
    )
    for name in _RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if _DROP_TIPS not in logger.filters:
            logger.addFilter(_DROP_TIPS)
