"""A DataModule from the same YAML files the Lightning verbs take (for tools outside a Trainer)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser

from src.data.base import DeepfakeDataModuleBase
from src.errors import ConfigError

#: Sections of a LightningCLI config that a tool reading only the data ignores.
OTHER_SECTIONS = ("model", "trainer", "seed_everything", "ckpt_path", "optimizer", "lr_scheduler")


def datamodule_from_configs(
    configs: Sequence[str | Path], overrides: Sequence[str] = ()
) -> DeepfakeDataModuleBase:
    """The DataModule that ``dfbench fit -c CONFIG ...`` would build from ``configs``.

    Args:
        configs: YAML files, stacked in order (``config:`` includes are followed).
        overrides: ``--data.init_args.KEY=VALUE`` style arguments applied after them.
    """
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_subclass_arguments(DeepfakeDataModuleBase, "data", required=True)
    for section in OTHER_SECTIONS:
        parser.add_argument(f"--{section}", type=Any)
    args = [item for config in configs for item in ("--config", str(config))]
    missing = [str(config) for config in configs if not Path(config).is_file()]
    if missing:
        raise FileNotFoundError(f"config file not found: {', '.join(missing)}")
    try:
        parsed = parser.parse_args([*args, *overrides])
    except Exception as error:  # jsonargparse raises its own error types
        raise ConfigError(f"data config {', '.join(map(str, configs))}: {error}") from error
    return parser.instantiate(parsed).data
