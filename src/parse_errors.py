"""jsonargparse's errors, shortened to the line a user acts on.

jsonargparse explains a bad value with every type it tried (a model may also
be None, so "Expected a <class 'NoneType'>" follows each mistake) and the
whole value it got, over a dozen lines. Building the classes, it also wraps
whatever a constructor raised (a missing weights file, an unknown backbone,
a genuine bug) in the same "Does not validate" error. Here:

* parse_error_line: a parse error as ``--key: what is wrong (got VALUE)``,
  with the closest option names when a key is misspelled;
* unwrap_instantiation: the constructor's own exception, so an expected
  failure prints its message (named after the class that raised it) and a bug
  keeps its traceback.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re

from src.errors import ConfigError, expected_error, one_line

_NOISE = (
    "Does not validate against any of the Union subtypes",
    "Subtypes:",
    "Errors:",
    "Given value type:",
    "- Expected a <class 'NoneType'>",
)
_CLASS = re.compile(r"<class '([\w.]+)'>")
_NOT_ACCEPTED = re.compile(
    r"Problem with given class_path '([\w.]+)': Option '(\w+)' is not accepted"
)


def _class_options(class_path: str) -> list[str]:
    """Every constructor argument of a class and its bases (what ``**kwargs`` may reach)."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return []
    names: list[str] = []
    for klass in inspect.getmro(cls):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            continue
        names += [p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD]
    return sorted(set(names) - {"self"})


def _suggest(match: re.Match[str]) -> str:
    class_path, option = match.groups()
    close = difflib.get_close_matches(option, _class_options(class_path), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"{class_path} takes no option '{option}'{hint}"


def parse_error_line(message: str) -> str:
    """jsonargparse's multi-line parse error as one line."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    key = None
    if lines and (match := re.match(r'Parser key "([^"]+)":\s*(.*)', lines[0])):
        key, rest = match.groups()
        lines[0] = rest
    given = None
    kept = []
    for line in lines:
        if line.startswith("Given value:"):
            given = line.removeprefix("Given value:").strip()
        elif (
            line and not line.startswith(_NOISE) and not line.removeprefix("- ").startswith(_NOISE)
        ):
            kept.append(line.removeprefix("- "))
    text = " ".join(kept)
    named = bool(_NOT_ACCEPTED.search(text))
    text = _NOT_ACCEPTED.sub(_suggest, text)
    text = _CLASS.sub(lambda m: m.group(1), text).replace("Expected a ", "expected ")
    if given is not None and not named and len(given) <= 80 and "got" not in text.lower():
        text += f", got {given!r}"
    return f"--{key}: {text}" if key else text


def unwrap_instantiation(error: Exception) -> BaseException:
    """What to raise for an error jsonargparse raised while building the model or data.

    The innermost cause is what the constructor raised: an expected failure is
    re-raised as one line named after the class (``BackboneClassifier: unknown
    backbone ...``), anything else as it was, with its traceback.
    """
    root: BaseException = error
    while root.__cause__ is not None or root.__context__ is not None:
        root = root.__cause__ or root.__context__
    if root is error:
        text = str(error)
        return ConfigError(parse_error_line(text)) if text.startswith(_NOISE[0]) else error
    if not expected_error(root):
        return root
    found = re.search(r"class_path='([\w.]+)'", str(error))
    owner = f"{found.group(1).rsplit('.', 1)[-1]}: " if found else ""
    return ConfigError(f"{owner}{one_line(root)}")
