"""JSON Schemas of each family's message values, for producers and the embedded broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.families import FAMILIES, event_family

DRAFT = "https://json-schema.org/draft/2020-12/schema"
BASE_URL = "https://corridor-monitor.example/schemas"


def family_json_schema(family: str) -> dict[str, Any]:
    """The JSON Schema of a ``family`` message value: one event, or a non-empty array of them.

    The document validates a message value at its root; it also holds the same schema
    under ``properties.value``, which is where the Tansu broker's schema registry looks.
    """
    declared = event_family(family)
    model, topic = declared.model, declared.topic
    event = model.model_json_schema(ref_template="#/$defs/{model}")
    definitions = event.pop("$defs", {}) | {model.__name__: event}
    reference = {"$ref": f"#/$defs/{model.__name__}"}
    value_id = f"{BASE_URL}/{topic}/value.json"
    value = {
        "$schema": DRAFT,
        "$id": value_id,
        "title": f"{topic} message value",
        "description": f"One {family} event ({model.__name__}), or a non-empty JSON array of them (a batch).",
        "anyOf": [reference, {"type": "array", "minItems": 1, "items": reference}],
        "$defs": dict(sorted(definitions.items())),
    }
    return {
        "$schema": DRAFT,
        "$id": f"{BASE_URL}/{topic}.json",
        "title": topic,
        "description": (
            f"Message value of Kafka topic {topic}: UTF-8 JSON, one {family} event or a non-empty array of them."
        ),
        "$comment": "Validate a message value against this document; brokers such as Tansu read properties.value.",
        "$ref": value_id,
        "properties": {"value": value},
    }


def family_schema_text(family: str) -> str:
    """The JSON Schema document of a ``family`` message value as text, as ``export_schemas`` writes it."""
    return json.dumps(family_json_schema(family), indent=2, ensure_ascii=False) + "\n"


def export_schemas(directory: Path | str) -> list[Path]:
    """Write ``<topic>.json`` for every family into ``directory`` (created if missing); return the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for family in FAMILIES.values():
        path = directory / f"{family.topic}.json"
        path.write_text(family_schema_text(family.name), encoding="utf-8")
        paths.append(path)
    return paths
