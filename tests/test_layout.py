"""The package layout: imports between the parts of ``src`` flow one way.

Every module under ``src/`` is parsed with ``ast`` (nothing is imported), and
every static import counts, including those inside functions. The parts are the
top-level packages and modules of ``src``, in layers::

    cli  ->  bench, tools, configs  ->  detectors, data, augment, synthetic  ->  contracts,
                                                                     metrics, files, registry,
                                                                     progress_bars, errors,
                                                                     parse_errors,
                                                                     checkpoint_files

A failure lists every offending ``file:line``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

BOTTOM = (
    "contracts",
    "metrics",
    "files",
    "registry",
    "progress_bars",
    "errors",
    "parse_errors",
    "checkpoint_files",
)
MIDDLE = ("detectors", "data", "augment", "synthetic")
TOP = ("bench", "tools", "configs", "cli")
PARTS = (*BOTTOM, *MIDDLE, *TOP)


@dataclass(frozen=True)
class Import:
    """One static import: where it is, which part imports, and the module it names."""

    file: str
    line: int
    part: str
    target: str  # dotted module name, e.g. "src.augment.sbi" or "argparse"

    @property
    def target_part(self) -> str | None:
        """The part of ``src`` imported (None for a module outside ``src``)."""
        names = self.target.split(".")
        return names[1] if names[0] == "src" and len(names) > 1 else None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.part} imports {self.target}"


def _module_name(path: Path, root: Path) -> list[str]:
    parts = ["src", *path.relative_to(root).with_suffix("").parts]
    return parts[:-1] if parts[-1] == "__init__" else parts


def _is_module(root: Path, dotted: str) -> bool:
    relative = Path(*dotted.split(".")[1:])
    return (root / relative).with_suffix(".py").is_file() or (root / relative).is_dir()


def imports_under(root: Path) -> list[Import]:
    """Every static import of every module under ``root`` (a copy of ``src``)."""
    found: list[Import] = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if len(relative.parts) == 1 and relative.name == "__init__.py":
            continue  # src/__init__.py belongs to no part
        part = relative.parts[0].removesuffix(".py")
        module = _module_name(path, root)
        package = module if path.name == "__init__.py" else module[:-1]
        shown = f"src/{relative.as_posix()}"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                origin = ".".join([*base, *([node.module] if node.module else [])])
                # `from src.x import y` imports the module src.x.y when y is one.
                names = [
                    f"{origin}.{alias.name}"
                    if origin.startswith("src") and _is_module(root, f"{origin}.{alias.name}")
                    else origin
                    for alias in node.names
                ]
            else:
                continue
            found += [Import(shown, node.lineno, part, name) for name in dict.fromkeys(names)]
    return sorted(found, key=lambda item: (item.file, item.line, item.target))


#: (importing part, imported part) -> why it is forbidden.
FORBIDDEN: dict[tuple[str, str], str] = {
    **{(low, high): "an upward import" for low in (*BOTTOM, *MIDDLE) for high in TOP},
    **{(low, mid): "an upward import" for low in BOTTOM for mid in MIDDLE},
    ("augment", "data"): "augment never reads data (tools combine them)",
    ("augment", "detectors"): "augment never knows the detectors",
    ("data", "synthetic"): "data never imports synthetic data (synthetic builds on data)",
    ("data", "detectors"): "the data pipeline never knows which detector trains",
    ("detectors", "data"): "detectors derive their targets from the batch only",
    ("detectors", "augment"): "detectors derive their targets from the batch only",
    ("bench", "cli"): "the runner launches `python -m src.cli`; it never imports it",
    ("configs", "cli"): "the resolver serves the verbs and the runner alike",
    ("configs", "bench"): "the resolver serves the verbs and the runner alike",
    ("tools", "cli"): "tools are libraries; their verbs live in cli",
}


def upward_imports(imports: list[Import]) -> list[str]:
    return [
        f"{item} ({FORBIDDEN[item.part, item.target_part]})"
        for item in imports
        if (item.part, item.target_part) in FORBIDDEN
    ]


def augment_internals_in_data(imports: list[Import]) -> list[str]:
    return [
        f"{item} (data may use the package src.augment, not its modules)"
        for item in imports
        if item.part == "data" and item.target.startswith("src.augment.")
    ]


def argparse_outside_cli(imports: list[Import]) -> list[str]:
    return [
        f"{item} (argparse belongs in src/cli)"
        for item in imports
        if item.part != "cli" and item.target.split(".")[0] == "argparse"
    ]


def import_cycles(imports: list[Import]) -> list[str]:
    """The imports along every cycle between parts (strongly connected components)."""
    edges: dict[str, set[str]] = {part: set() for part in PARTS}
    for item in imports:
        if item.target_part and item.target_part != item.part:
            edges.setdefault(item.part, set()).add(item.target_part)
            edges.setdefault(item.target_part, set())
    reach = {part: _reachable(part, edges) for part in edges}
    return [
        f"{item} (cycle: {item.target_part} also reaches {item.part})"
        for item in imports
        if item.target_part
        and item.target_part != item.part
        and item.part in reach[item.target_part]
    ]


def _reachable(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen, stack = set(), [start]
    while stack:
        for nxt in edges[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _report(problems: list[str]) -> str:
    return f"{len(problems)} import(s) break the layout:\n" + "\n".join(problems)


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return imports_under(SRC)


def test_every_part_is_known(imports: list[Import]) -> None:
    parts = {p.name.removesuffix(".py") for p in SRC.iterdir() if p.suffix == ".py" or p.is_dir()}
    assert parts - {"__init__", "__pycache__"} == set(PARTS)
    # The scan sees imports inside functions, relative or not (the dispatcher's verbs do).
    assert any(
        i.file == "src/cli/synth.py" and i.target == "src.synthetic.prepare" for i in imports
    )


def test_no_import_cycle_between_parts(imports: list[Import]) -> None:
    problems = import_cycles(imports)
    assert not problems, _report(problems)


def test_no_upward_import(imports: list[Import]) -> None:
    problems = upward_imports(imports)
    assert not problems, _report(problems)


def test_argparse_only_in_cli(imports: list[Import]) -> None:
    problems = argparse_outside_cli(imports)
    assert not problems, _report(problems)


def test_data_uses_no_augment_internals(imports: list[Import]) -> None:
    problems = augment_internals_in_data(imports)
    assert not problems, _report(problems)


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    root = tmp_path / "src"
    files = {
        "__init__.py": "",
        "files.py": "",
        "cli/__init__.py": "import argparse\n",
        "tools/__init__.py": "",
        "augment/__init__.py": "",
        "augment/sbi.py": "def f():\n    from ..data import base\n",
        "data/__init__.py": "",
        "data/base.py": "from src.augment import sbi\nfrom src import augment\n",
        "data/tables.py": "\n\nimport argparse as ap\nfrom src.files import x\n",
        "detectors/__init__.py": "def g():\n    from src.cli import main\n",
        "metrics.py": "from src.detectors import g\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    found = imports_under(root)
    assert {str(i) for i in found} == {
        "src/cli/__init__.py:1: cli imports argparse",
        "src/augment/sbi.py:2: augment imports src.data.base",
        "src/data/base.py:1: data imports src.augment.sbi",
        "src/data/base.py:2: data imports src.augment",
        "src/data/tables.py:3: data imports argparse",
        "src/data/tables.py:4: data imports src.files",
        "src/detectors/__init__.py:2: detectors imports src.cli",
        "src/metrics.py:1: metrics imports src.detectors",
    }
    assert [p.split(" (")[0] for p in upward_imports(found)] == [
        "src/augment/sbi.py:2: augment imports src.data.base",
        "src/detectors/__init__.py:2: detectors imports src.cli",
        "src/metrics.py:1: metrics imports src.detectors",
    ]
    assert [p.split(" (")[0] for p in argparse_outside_cli(found)] == [
        "src/data/tables.py:3: data imports argparse"
    ]
    assert [p.split(" (")[0] for p in augment_internals_in_data(found)] == [
        "src/data/base.py:1: data imports src.augment.sbi"
    ]
    assert sorted(p.split(" (")[0] for p in import_cycles(found)) == [
        "src/augment/sbi.py:2: augment imports src.data.base",
        "src/data/base.py:1: data imports src.augment.sbi",
        "src/data/base.py:2: data imports src.augment",
    ]
