"""Thresholds from an operator's YAML file, and the commented file of every threshold.

A thresholds file is a YAML mapping of ``Thresholds`` fields to values. Its keys override a
profile (``default`` unless told otherwise): a key left out keeps the profile's value, so an
empty file is the profile itself; a key given replaces the field's value whole, so a
per-stream mapping lists every stream it keeps (a stream left out of ``stream_silent_s`` is
not watched). The file is validated by ``Thresholds`` itself: whatever a field refuses, the
file refuses, and a field added to the model is a key of the file with nothing to change here.

``load`` refuses a file it cannot use with a ``ConfigError`` whose lines each name the file,
the line, the key (``volume_drop_fraction.shipments`` inside a mapping) and what to change.
``example`` renders thresholds as such a file, each field under its description.
"""

from __future__ import annotations

import difflib
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from streams.alerting.thresholds import PROFILES, Thresholds

EXAMPLE_HEADER = """\
Thresholds, selectors and labels of Corridor Monitor's alert rules and dashboards: every key,
its value and what it is. Render the rules and the dashboards with a file of your own:

  corridor alerts render --config thresholds.yaml
  corridor dashboards build --config thresholds.yaml

Keep only the keys you change: a key left out takes its default, also when a release changes
it. A key given replaces the default whole: a per-stream mapping lists every stream it keeps
(a stream left out is not watched). Durations are seconds. Unknown keys and bad values are
refused, naming the key. Written by `corridor alerts config` from
streams/alerting/thresholds.py; docs/runbook.md#thresholds says more about each key."""


class ConfigError(ValueError):
    """A thresholds file that cannot be used; each line of the message names a key and the fix."""


def load(path: Path, base: Thresholds | None = None) -> Thresholds:
    """The thresholds of the file at ``path``: ``base`` (the default profile) with the file's keys over it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read it: {error}") from None
    return parse(text, base, source=str(path))


def parse(text: str, base: Thresholds | None = None, source: str = "<thresholds>") -> Thresholds:
    """``load`` of the YAML ``text``; ``source`` names it in errors."""
    chosen = PROFILES["default"] if base is None else base
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    if document is None:
        return chosen
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: expected a mapping of threshold names to values, not a "
                          f"{type(document).__name__}; `corridor alerts config` prints one")
    _refuse_repeated_keys(node, source)
    try:
        return Thresholds.model_validate({**chosen.model_dump(), **document})
    except ValidationError as error:
        lines = [_explain(detail, document, node, source, chosen) for detail in error.errors()]
        raise ConfigError("\n".join(lines)) from None


def _refuse_repeated_keys(node: yaml.Node | None, source: str) -> None:
    # PyYAML keeps the last of repeated keys: a value set twice is a mistake one of them hides.
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key, value in node.value:
            if key.value in seen:
                raise ConfigError(f"{source}:{key.start_mark.line + 1}: {key.value!r} repeats the key of line "
                                  f"{seen[key.value]}: keep one")
            seen[key.value] = key.start_mark.line + 1
            _refuse_repeated_keys(value, source)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_repeated_keys(item, source)


def _line(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The line of the deepest key of ``loc`` found in the composed document."""
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = [(key, value) for key, value in node.value if key.value == str(part)]
            if not found:
                break
            key, node = found[-1]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _explain(detail: ErrorDetails, document: Mapping[Any, Any], node: yaml.Node | None, source: str,
             base: Thresholds) -> str:
    loc = tuple(detail["loc"])
    path = ".".join(str(part) for part in loc) or "the file"
    line = _line(node, loc)
    where = f"{source}:{line}" if line is not None else source
    fields = Thresholds.model_fields
    if detail["type"] == "extra_forbidden" and len(loc) == 1:
        close = difflib.get_close_matches(str(loc[0]), list(fields), n=1)
        hint = f"did you mean {close[0]!r}?" if close else "`corridor alerts config` lists every key"
        return f"{where}: {path}: unknown key ({hint})"
    message = detail["msg"].removeprefix("Value error, ")
    name = str(loc[0]) if loc else ""
    if name not in fields or name not in document:
        return f"{where}: {path}: {message}"
    got = detail["input"]
    if len(loc) == 1 and isinstance(got, dict):
        # A check of the whole mapping (its keys, say): the keys it refuses on their own are at fault.
        culprits = [key for key in got if _refused(base, name, {key: got[key]})]
        if culprits and (len(culprits) < len(got) or len(got) == 1):
            path = ", ".join(f"{name}.{key}" for key in culprits)
            line = _line(node, (name, culprits[0]))
            where = f"{source}:{line}" if line is not None else where
    shown = "" if isinstance(got, (dict, list)) else f", got {got!r}"
    default = yaml.safe_dump(base.model_dump(mode="json")[name], default_flow_style=True, sort_keys=False,
                             width=1000)
    default = default.strip().removesuffix("...").strip()
    return f"{where}: {path}: {message}{shown} ({name}: {fields[name].description}; default {default})"


def _refused(base: Thresholds, name: str, value: Any) -> bool:
    """Whether the field ``name`` refuses ``value`` (the other fields the profile's)."""
    try:
        Thresholds.model_validate({**base.model_dump(), name: value})
    except ValidationError as error:
        return any(detail["loc"][:1] == (name,) for detail in error.errors())
    return False


def example(thresholds: Thresholds | None = None) -> str:
    """``thresholds`` (the default profile's) as a thresholds file: each key under its description."""
    chosen = PROFILES["default"] if thresholds is None else thresholds
    values = chosen.model_dump(mode="json")
    lines = [*_comment(EXAMPLE_HEADER)]
    for name, field in Thresholds.model_fields.items():
        lines.append("")
        lines += _comment(field.description or name)
        lines += yaml.safe_dump({name: values[name]}, sort_keys=False, width=120, allow_unicode=True).splitlines()
    return "\n".join(lines) + "\n"


def _comment(text: str) -> list[str]:
    wrapped = [line for paragraph in text.splitlines()
               for line in (textwrap.wrap(paragraph, 98, break_on_hyphens=False) or [""])]
    return [f"# {line}".rstrip() for line in wrapped]
