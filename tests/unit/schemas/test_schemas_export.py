"""Exported JSON Schemas: in sync with the models, and agreeing with them on good and bad events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given

from schemas.export import export_schemas, family_json_schema
from schemas.families import FAMILIES, FAMILY_NAMES
from schemas.samples import sample_event
from tests.strategies import family_events

COMMITTED = Path(__file__).resolve().parents[3] / "schemas" / "json"
VALIDATORS = {family: jsonschema.Draft202012Validator(family_json_schema(family)) for family in FAMILY_NAMES}


def test_committed_schemas_match_the_models(tmp_path):
    written = export_schemas(tmp_path)
    assert sorted(path.name for path in written) == sorted(f"{family.topic}.json" for family in FAMILIES.values())
    assert sorted(path.name for path in COMMITTED.glob("*.json")) == sorted(path.name for path in written)
    for path in written:
        assert (COMMITTED / path.name).read_text() == path.read_text(), (
            f"{path.name} is stale: run `corridor schemas export schemas/json`"
        )


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_schemas_are_valid_and_self_describing(family):
    document = family_json_schema(family)
    jsonschema.Draft202012Validator.check_schema(document)
    value = document["properties"]["value"]
    jsonschema.Draft202012Validator.check_schema(value)
    assert document["title"] == FAMILIES[family].topic
    assert document["$id"].endswith(f"/{FAMILIES[family].topic}.json")
    (event,) = [definition for name, definition in value["$defs"].items() if "properties" in definition]
    assert all(field.get("description") for field in event["properties"].values())


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_the_broker_value_schema_stands_alone(family):
    value = jsonschema.Draft202012Validator(family_json_schema(family)["properties"]["value"])
    good = json.loads(json.dumps(sample_event(family)))
    assert value.is_valid(good) and value.is_valid([good, good])
    assert not value.is_valid(good | {"colour": "red"}) and not value.is_valid([])


@given(family_events)
def test_valid_events_pass_the_exported_schema(family_and_event):
    family, event = family_and_event
    as_json = json.loads(event.model_dump_json())
    assert VALIDATORS[family].is_valid(as_json)
    assert VALIDATORS[family].is_valid([as_json, as_json])


def _bad(family: str, **overrides: Any) -> Any:
    return json.loads(json.dumps(sample_event(family) | overrides))


def _without(family: str, field: str) -> Any:
    return {name: value for name, value in _bad(family).items() if name != field}


BAD_VALUES = [
    ("shipments", []),
    ("shipments", 42),
    ("shipments", _bad("shipments", teu=-3)),
    ("shipments", _bad("shipments", teu="3")),
    ("shipments", _bad("shipments", mode="truck")),
    ("shipments", _bad("shipments", origin="cnckg")),
    ("shipments", _bad("shipments", event_time="2024-05-01T08:00:00")),
    ("shipments", _without("shipments", "route")),
    ("shipments", _without("shipments", "currency")),
    ("shipments", _bad("shipments", currency=None)),
    ("shipments", [_bad("shipments"), _bad("flights")]),
    ("flights", _bad("flights", passengers=12.5)),
    ("flights", _bad("flights", route="CKG_SIN")),
    ("finance", _bad("finance", amount=0)),
    ("finance", _bad("finance", amount="1000")),
    ("finance", _bad("finance", colour="red")),
    ("datachannel", _bad("datachannel", packet_loss_ratio=1.5)),
    ("datachannel", _bad("datachannel", interval_seconds=0)),
    ("datachannel", _bad("datachannel", event_time=1714550400)),
]


@pytest.mark.parametrize(("family", "value"), BAD_VALUES)
def test_bad_events_fail_the_exported_schema(family, value):
    assert not VALIDATORS[family].is_valid(value)
