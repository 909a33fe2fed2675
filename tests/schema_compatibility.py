"""Confluent Schema Registry's BACKWARD check for JSON Schema, for the keywords the corridor's documents use.

A subject set to BACKWARD takes a new schema only if a reader holding it can read whatever was
written with the registered one. Confluent's checker (``SchemaDiff`` in the registry's
``json-schema-provider``) walks both documents side by side, lists every difference and refuses
the new schema when one of them is not in its list of compatible changes. The same rules here,
for the keywords ``corridor schemas export`` writes:

- annotations (``title``, ``description``, ``default``, ``$id``, ...) may change;
- ``type`` may widen (``integer`` to ``number``, more types), never narrow;
- bounds may widen or go (``maxLength``/``maximum``/``maxItems`` up, ``minLength``/``minimum``/
  ``minItems`` down), never tighten or appear; ``pattern`` and ``format`` may go, never change
  or appear; ``enum`` may gain values, never lose one;
- ``anyOf``/``oneOf``: each old branch must be read by a new branch (more branches is fine);
- objects: no property may become required or be removed; a property may be added only to a
  closed content model (``additionalProperties: false``, Confluent's "unopen" model: data
  written with the old schema cannot hold it), and only as an optional one;
  ``additionalProperties`` may open, never close;
- every other keyword (``if``/``then``, ``allOf``, ``not``, ...) must stay exactly as it was.

The last rule makes the check err only on the side of refusing: a difference it cannot judge is
reported. ``$ref`` is followed to the ``$id`` or ``#/$defs/...`` it names.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The shipments topic's JSON Schema as version 1 of the shipment contract published it, kept unchanged.
SHIPMENT_CONTRACT_1 = (Path(__file__).resolve().parents[1] / "schemas" / "json" / "history" / "shipments-contract-1"
                       / "corridor.shipments.v1.json")

ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$comment", "$schema", "$id", "deprecated",
                         "readOnly", "writeOnly"})
#: Bounds a reader may raise or drop (an upper bound) or lower or drop (a lower bound).
UPPER_BOUNDS = ("maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties")
LOWER_BOUNDS = ("minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties")
#: Keywords that may be dropped, never added or changed.
DROPPABLE = ("pattern", "format", "multipleOf")
#: Handled on their own, or reached only through ``$ref``.
STRUCTURAL = frozenset({"$ref", "$defs", "type", "enum", "anyOf", "oneOf", "properties", "required",
                        "additionalProperties", "items", *UPPER_BOUNDS, *LOWER_BOUNDS, *DROPPABLE})


@dataclass
class _Document:
    """One side of the comparison: its schema resources by ``$id`` and its ``$defs``."""

    root: Mapping[str, Any]
    by_id: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    defs: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for schema in _subschemas(self.root):
            if isinstance(schema.get("$id"), str):
                self.by_id[schema["$id"]] = schema
            self.defs.update(schema.get("$defs", {}))

    def resolve(self, reference: str) -> Mapping[str, Any]:
        if reference in self.by_id:
            return self.by_id[reference]
        if reference.startswith("#/$defs/") and reference[len("#/$defs/"):] in self.defs:
            return self.defs[reference[len("#/$defs/"):]]
        raise ValueError(f"cannot follow $ref {reference!r}")


def _subschemas(schema: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(schema, Mapping):
        yield schema
        for value in schema.values():
            yield from _subschemas(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _subschemas(value)


def backward_incompatibilities(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Why a reader holding ``new`` might not read data written with ``old``: one line per difference
    Confluent's BACKWARD check refuses, as ``<JSON pointer>: <what changed>`` (empty: compatible)."""
    problems = _Comparison(_Document(old), _Document(new)).compare(old, new, "#")
    return list(dict.fromkeys(problems))  # a definition several references reach reports its problems once


@dataclass
class _Comparison:
    old: _Document
    new: _Document
    #: What comparing the schemas two references name found (None while it is under way: a cycle).
    _references: dict[tuple[str, str], list[str] | None] = field(default_factory=dict)

    def compare(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> list[str]:
        old_ref, new_ref = old.get("$ref"), new.get("$ref")
        if (old_ref is None) != (new_ref is None):
            # One side inline, the other a reference: the reference must stand alone to be compared with it.
            if old_ref is not None and set(old) - ANNOTATIONS == {"$ref"}:
                return self.compare(self.old.resolve(old_ref), new, path)
            if new_ref is not None and set(new) - ANNOTATIONS == {"$ref"}:
                return self.compare(old, self.new.resolve(new_ref), path)
            return [f"{path}/$ref: added or removed beside other keywords"]
        problems = [] if old_ref is None else self._referenced(old_ref, new_ref, f"{path}/$ref")
        old, new = _without_ref(old), _without_ref(new)
        problems += self._types(old, new, path)
        problems += self._bounds(old, new, path)
        problems += self._enum(old, new, path)
        problems += self._branches(old, new, path)
        problems += self._object(old, new, path)
        if "items" in old or "items" in new:
            if not ("items" in old and "items" in new):
                problems.append(f"{path}/items: added or removed")
            else:
                problems += self.compare(old["items"], new["items"], f"{path}/items")
        for keyword in sorted((set(old) | set(new)) - STRUCTURAL - ANNOTATIONS):
            if old.get(keyword) != new.get(keyword):
                problems.append(f"{path}/{keyword}: changed, and only the same keyword is known to be compatible")
        return problems

    def _referenced(self, old_ref: str, new_ref: str, path: str) -> list[str]:
        pair = (old_ref, new_ref)
        if pair not in self._references:
            self._references[pair] = None
            self._references[pair] = self.compare(self.old.resolve(old_ref), self.new.resolve(new_ref), path)
        return list(self._references[pair] or ())

    @staticmethod
    def _types(old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> list[str]:
        if "type" not in old and "type" not in new:
            return []
        if "type" not in old or "type" not in new:
            return [f"{path}/type: added or removed"]
        old_types, new_types = _as_set(old["type"]), _as_set(new["type"])
        if "number" in new_types:
            new_types |= {"integer"}
        lost = old_types - new_types
        return [f"{path}/type: narrowed, {sorted(lost)} no longer read"] if lost else []

    @staticmethod
    def _bounds(old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> list[str]:
        problems = []
        for keyword in UPPER_BOUNDS + LOWER_BOUNDS:
            if keyword not in new or old.get(keyword) == new[keyword]:
                continue
            if keyword not in old:
                problems.append(f"{path}/{keyword}: added ({new[keyword]})")
            elif (new[keyword] < old[keyword]) if keyword in UPPER_BOUNDS else (new[keyword] > old[keyword]):
                problems.append(f"{path}/{keyword}: tightened from {old[keyword]} to {new[keyword]}")
        for keyword in DROPPABLE:
            if keyword in new and old.get(keyword) != new[keyword]:
                problems.append(f"{path}/{keyword}: {'changed' if keyword in old else 'added'}")
        return problems

    @staticmethod
    def _enum(old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> list[str]:
        if "enum" not in new:
            return []
        if "enum" not in old:
            return [f"{path}/enum: added"]
        lost = [value for value in old["enum"] if value not in new["enum"]]
        return [f"{path}/enum: narrowed, {lost} no longer read"] if lost else []

    def _branches(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> list[str]:
        problems = []
        for keyword in ("anyOf", "oneOf"):
            if keyword not in old and keyword not in new:
                continue
            if keyword not in old or keyword not in new:
                problems.append(f"{path}/{keyword}: added or removed")
                continue
            for number, branch in enumerate(old[keyword]):
                attempts = [self.compare(branch, candidate, f"{path}/{keyword}/{number}") for candidate in new[keyword]]
                if all(attempts):  # no branch of the new schema reads it: what the closest one lacks
                    problems += min(attempts, key=len)
        return problems

    def _object(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> list[str]:
        problems = []
        old_properties, new_properties = old.get("properties", {}), new.get("properties", {})
        old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
        closed = old.get("additionalProperties") is False and "patternProperties" not in old
        for name in sorted(new_required - old_required):
            problems.append(f"{path}/required/{name}: "
                            + ("became required" if name in old_properties else "added as a required property"))
        for name, schema in old_properties.items():
            if name not in new_properties:
                problems.append(f"{path}/properties/{name}: removed")
            else:
                problems += self.compare(schema, new_properties[name], f"{path}/properties/{name}")
        for name in sorted(set(new_properties) - set(old_properties)):
            if not closed:
                problems.append(f"{path}/properties/{name}: added to an open content model, where data written "
                                "with the old schema may already hold it with another type")
        old_extra, new_extra = old.get("additionalProperties", True), new.get("additionalProperties", True)
        if new_extra is False and old_extra is not False:
            problems.append(f"{path}/additionalProperties: closed")
        elif isinstance(old_extra, Mapping) and isinstance(new_extra, Mapping):
            problems += self.compare(old_extra, new_extra, f"{path}/additionalProperties")
        elif isinstance(new_extra, Mapping) and old_extra is not False:
            problems.append(f"{path}/additionalProperties: narrowed")
        return problems


def _as_set(types: str | list[str]) -> set[str]:
    return {types} if isinstance(types, str) else set(types)


def _without_ref(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {keyword: value for keyword, value in schema.items() if keyword != "$ref"}
