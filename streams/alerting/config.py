"""Thresholds from an operator's YAML file, and the commented file of every threshold.

A thresholds file is a YAML mapping of ``Thresholds`` fields to values. Its keys override a
profile (``default`` unless told otherwise): a key left out keeps the profile's value, so an
empty file is the profile itself; a key given replaces the field's value whole, so a
per-stream mapping lists every stream it keeps (a stream left out of ``stream_silent_s`` is
not watched). The file is validated by ``Thresholds`` itself: whatever a field refuses, the
file refuses, and a field added to the model is a key of the file with nothing to change here.
Beyond the model, the file refuses what YAML would slip past it: a repeated key (PyYAML keeps
the last) and a boolean where a field takes none (YAML reads ``yes``, ``no``, ``on``, ``off``
as booleans, and pydantic would take them for 1 and 0).

``load`` refuses a file it cannot use with a ``ConfigError`` whose lines each name the file,
the line, the key (``volume_drop_fraction.shipments`` inside a mapping) and what to change.
``example`` renders thresholds as such a file, each field under its description.
"""

from __future__ import annotations

import difflib
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

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
        composed = _Composed(source, yaml.compose(text, Loader=yaml.SafeLoader))
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError(f"{where}: not valid YAML: {getattr(error, 'problem', None) or error}") from None
    if document is None:
        return chosen
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: expected a mapping of threshold names to values, not a "
                          f"{type(document).__name__}; `corridor alerts config` prints one")
    composed.refuse_repeated_keys()
    # A key YAML reads as a number or a boolean is no field's name either.
    document = {key if isinstance(key, str) else str(key): value for key, value in document.items()}
    _refuse_booleans(document, composed)
    try:
        return Thresholds.model_validate({**chosen.model_dump(), **document})
    except ValidationError as error:
        lines = [_explain(detail, document, composed, chosen) for detail in error.errors()]
        raise ConfigError("\n".join(lines)) from None


@dataclass(frozen=True, slots=True)
class _Composed:
    """The file as YAML nodes: where a key is, and a value as it is written."""

    source: str
    root: yaml.Node | None

    def _nodes(self, loc: tuple[int | str, ...]) -> list[yaml.Node]:
        """The key (or item) node of each part of ``loc``, as far as the file has them, then the value of the last."""
        found: list[yaml.Node] = []
        node = self.root
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                pairs = [(key, value) for key, value in node.value if key.value == str(part)]
                if not pairs:
                    return found
                key, node = pairs[-1]
                found.append(key)
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
                found.append(node)
            else:
                return found
        return [*found, node] if found and node is not None else found

    def where(self, loc: tuple[int | str, ...] = ()) -> str:
        """``source:line`` of the deepest part of ``loc`` the file has, or the source alone."""
        nodes = self._nodes(loc)[:len(loc)]
        return f"{self.source}:{nodes[-1].start_mark.line + 1}" if nodes else self.source

    def written(self, loc: tuple[int | str, ...]) -> str | None:
        """The scalar at ``loc`` as the file writes it."""
        nodes = self._nodes(loc)
        if len(nodes) <= len(loc) or not isinstance(nodes[-1], yaml.ScalarNode):
            return None
        return str(nodes[-1].value)

    def refuse_repeated_keys(self, node: yaml.Node | None = None) -> None:
        # PyYAML keeps the last of repeated keys: a value set twice is a mistake one of them hides.
        node = self.root if node is None else node
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key, value in node.value:
                if key.value in seen:
                    raise ConfigError(f"{self.source}:{key.start_mark.line + 1}: {key.value!r} repeats the key of "
                                      f"line {seen[key.value]}: keep one")
                seen[key.value] = key.start_mark.line + 1
                self.refuse_repeated_keys(value)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                self.refuse_repeated_keys(item)


def _refuse_booleans(document: dict[str, Any], composed: _Composed) -> None:
    # pydantic takes true for 1, and YAML reads yes, no, on and off as booleans: a number or a
    # name written so would pass as a 1 or a 0.
    for name, value in document.items():
        field = Thresholds.model_fields.get(name)
        if field is None or _admits_bool(field.annotation):
            continue
        for key, item in value.items() if isinstance(value, dict) else [(None, value)]:
            if isinstance(item, bool):
                loc = (name,) if key is None else (name, key)
                written = composed.written(loc) or str(item).lower()
                raise ConfigError(f"{composed.where(loc)}: {'.'.join(map(str, loc))}: {written} is a boolean here "
                                  f"(YAML reads yes, no, on and off as booleans); quote it if it is a name, or "
                                  f"give a {_kind(field.annotation)}")


def _admits_bool(annotation: Any) -> bool:
    return annotation is bool or any(_admits_bool(argument) for argument in get_args(annotation))


def _kind(annotation: Any) -> str:
    """What a value of ``annotation`` (of its values, for a mapping) is called."""
    if isinstance(annotation, type):
        return {int: "whole number", float: "number", str: "string"}.get(annotation, annotation.__name__)
    arguments = get_args(annotation)
    return _kind(arguments[-1] if get_origin(annotation) is dict else arguments[0]) if arguments else "value"


def _explain(detail: ErrorDetails, document: Mapping[str, Any], composed: _Composed, base: Thresholds) -> str:
    loc = tuple(detail["loc"])
    path, where = ".".join(str(part) for part in loc) or "the file", composed.where(loc)
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
            path, where = ", ".join(f"{name}.{key}" for key in culprits), composed.where((name, culprits[0]))
    shown = "" if isinstance(got, (dict, list)) else f"; the file has {got!r}"
    default = yaml.safe_dump(base.model_dump(mode="json")[name], default_flow_style=True, sort_keys=False,
                             width=1000).strip().removesuffix("...").strip()
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
