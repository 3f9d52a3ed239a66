"""The order of stacked -c files: data configs are the base layer, whatever their position.

jsonargparse applies -c files in the order given, so a method file that also
sets data options (laa_net.yaml: its DataModule, pseudo-fakes, batches of 8)
lost them to a data config stacked after it (batch 32), and kept them when
stacked before. Here a data config (a file that chooses the DataModule class
and sets no model) is read first; every other file and option applies on top
in the order given. ``-c laa_net.yaml -c cross_dataset.yaml`` and
``-c cross_dataset.yaml -c laa_net.yaml`` therefore resolve to one config.

A method file that names a DataModule class other than the data config's
would silently drop one of the two (jsonargparse keeps only the arguments the
new class shares): that is an error naming both files and classes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from src.cli import UsageError

_CONFIG_FLAGS = ("-c", "--config")


def _load(path: Path) -> dict[str, Any]:
    """A config file with the files it includes through ``config:`` merged under it."""
    seen: list[Path] = []
    layers: list[dict[str, Any]] = []
    while path.is_file() and path not in seen:
        seen.append(path)
        try:
            spec = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            return {}  # jsonargparse reports the file's syntax error itself
        if not isinstance(spec, dict):
            return {}
        layers.insert(0, spec)
        included = spec.get("config")
        if not isinstance(included, str):
            break
        path = (path.parent / included).resolve()
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    return merged


def _section(spec: dict[str, Any], name: str) -> dict[str, Any] | None:
    """A top-level section, from ``name: {...}`` or dotted ``name.x.y:`` keys."""
    section = spec.get(name)
    dotted = {k.split(".", 1)[1]: v for k, v in spec.items() if k.startswith(f"{name}.")}
    if section is None and not dotted:
        return None
    result = dict(section) if isinstance(section, dict) else {}
    if "class_path" in dotted:
        result["class_path"] = dotted["class_path"]
    return result


def _config_positions(argv: list[str]) -> list[tuple[int, int, str]]:
    """(start, stop, file) of every -c FILE / --config FILE / --config=FILE in argv."""
    found, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg in _CONFIG_FLAGS and i + 1 < len(argv):
            found.append((i, i + 2, argv[i + 1]))
            i += 2
            continue
        if arg.startswith("--config="):
            found.append((i, i + 1, arg.split("=", 1)[1]))
        i += 1
    return found


def order_configs(argv: list[str]) -> list[str]:
    """``argv`` (verb first) with its data configs moved right after the verb, in their order.

    Raises:
        UsageError: if a method file and a data config choose different DataModule classes.
    """
    positions = _config_positions(argv)
    data_files, data_class = [], None
    method_classes: list[tuple[str, str]] = []
    for start, stop, name in positions:
        spec = _load(Path(name).expanduser())
        data = _section(spec, "data")
        chosen = (data or {}).get("class_path")
        if chosen and _section(spec, "model") is None:
            data_files.append((start, stop, name))
            data_class = (name, chosen)
        elif chosen:
            method_classes.append((name, chosen))
    for name, chosen in method_classes:
        if data_class is not None and chosen != data_class[1]:
            raise UsageError(
                f"{name} trains with the DataModule {chosen}, but {data_class[0]} chooses "
                f"{data_class[1]}: stack a data config of {chosen} (configs/data/*.yaml)"
            )
    if not data_files:
        return list(argv)
    moved = {i for start, stop, _ in data_files for i in range(start, stop)}
    front = [argv[i] for start, stop, _ in data_files for i in range(start, stop)]
    rest = [arg for i, arg in enumerate(argv) if i not in moved]
    return [rest[0], *front, *rest[1:]]
