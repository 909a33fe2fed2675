"""Event models: the contract's fields, UTC timestamps, Python construction and the samples."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from schemas import DataChannelSample, FinanceEvent, FlightEvent, ShipmentEvent
from schemas.families import FAMILIES, FAMILY_NAMES
from schemas.samples import sample_event

#: Shipment contract version 2: optional fields only, so every version 1 event stays valid.
SHIPMENT_V2_FIELDS = {"location", "planned_time", "planned_time_classifier", "planned_arrival", "equipment_id",
                      "equipment_size_type", "empty", "transport_id"}
CONTRACT_FIELDS = {
    "shipments": {"shipment_id", "corridor", "route", "mode", "milestone", "teu", "gross_weight_kg", "origin",
                  "destination", "carrier", "declared_value", "currency", "commodity_hs"} | SHIPMENT_V2_FIELDS,
    "flights": {"flight_id", "carrier", "flight_number", "service", "route", "status", "scheduled_time",
                "actual_time", "passengers", "cargo_kg"},
    "finance": {"transaction_id", "instrument", "amount", "currency", "lender_country", "borrower_country", "status",
                "borrower_region"},
    "datachannel": {"link_id", "direction", "interval_seconds", "bytes", "latency_ms", "packet_loss_ratio"},
}  # fmt: skip
OPTIONAL_FIELDS = {
    "shipments": {"declared_value", "currency", "commodity_hs"} | SHIPMENT_V2_FIELDS,
    "flights": {"actual_time", "passengers", "cargo_kg"},
    "finance": {"borrower_region"},
    "datachannel": {"latency_ms", "packet_loss_ratio"},
}
COMMON_FIELDS = {"event_id", "event_time", "source"}


def test_every_family_has_a_model_that_knows_its_family():
    assert FAMILY_NAMES == ("shipments", "flights", "finance", "datachannel")
    assert all(family.model.family == name for name, family in FAMILIES.items())


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_models_hold_exactly_the_contract_fields(family):
    fields = FAMILIES[family].model.model_fields
    assert set(fields) == COMMON_FIELDS | CONTRACT_FIELDS[family]
    assert {name for name, info in fields.items() if not info.is_required()} == OPTIONAL_FIELDS[family]
    assert FAMILIES[family].key_field in fields
    assert all(info.description for info in fields.values())


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_samples_are_valid_fresh_and_overridable(family):
    first, second = sample_event(family), sample_event(family, source="override-test")
    model = FAMILIES[family].model
    assert isinstance(model.model_validate_json(json.dumps(first)), model)
    assert first["event_id"] != second["event_id"]
    assert second["source"] == "override-test"


def test_samples_use_the_corridors_reference_values():
    assert sample_event("shipments")["route"] == "CNCKG-CNQZH-SGSIN"
    assert (sample_event("flights")["route"], sample_event("flights")["carrier"]) == ("CKG-SIN", "TR")
    assert sample_event("datachannel")["link_id"] == "CQ-SG-1"
    with pytest.raises(ValueError, match="unknown event family"):
        sample_event("trains")


def test_models_are_frozen_and_reject_unknown_fields():
    sample = DataChannelSample(**_python_sample("datachannel"))
    with pytest.raises(ValidationError):
        sample.bytes = 1  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        DataChannelSample(**_python_sample("datachannel"), colour="red")


def test_python_construction_takes_aware_datetimes_and_normalises_them():
    singapore = timezone(timedelta(hours=8))
    flight = FlightEvent(**_python_sample("flights") | {"scheduled_time": datetime(2024, 5, 1, 9, 0, tzinfo=singapore)})
    assert flight.scheduled_time == datetime(2024, 5, 1, 1, 0, tzinfo=UTC)
    assert flight.scheduled_time.tzinfo is UTC
    with pytest.raises(ValidationError, match="timezone"):
        FlightEvent(**_python_sample("flights") | {"scheduled_time": datetime(2024, 5, 1, 9, 0)})
    with pytest.raises(ValidationError, match="datetime"):
        FlightEvent(**_python_sample("flights") | {"scheduled_time": "2024-05-01T09:00:00Z"})


def test_python_construction_takes_decimals_for_money():
    deal = FinanceEvent(**_python_sample("finance") | {"amount": Decimal("15390000000.00")})
    assert deal.amount == Decimal("15390000000.00")
    with pytest.raises(ValidationError, match="greater than 0"):
        FinanceEvent(**_python_sample("finance") | {"amount": Decimal("0")})


def test_shipment_value_needs_a_currency_but_not_the_reverse():
    fields = _python_sample("shipments")
    with pytest.raises(ValidationError, match="required when declared_value is given"):
        ShipmentEvent(**fields | {"currency": None})
    assert ShipmentEvent(**fields | {"declared_value": None}).currency == "USD"


def test_flight_delay_is_actual_minus_scheduled():
    fields = _python_sample("flights")
    scheduled = datetime(2024, 5, 1, 1, 0, tzinfo=UTC)
    late = FlightEvent(**fields | {"scheduled_time": scheduled, "actual_time": scheduled + timedelta(minutes=25)})
    assert late.delay_seconds == 1500.0
    assert FlightEvent(**fields | {"actual_time": None}).delay_seconds is None


def _python_sample(family: str) -> dict[str, object]:
    """A sample with its timestamps as datetimes, as Python callers pass them."""
    fields = sample_event(family)
    for name in ("event_time", "scheduled_time", "actual_time"):
        if name in fields:
            fields[name] = datetime.fromisoformat(fields[name])
    return fields
