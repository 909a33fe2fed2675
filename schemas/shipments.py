"""Shipment milestones on the corridor's rail, sea and road legs."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import ConfigDict, Field, StringConstraints, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from schemas.common import (
    BaseEvent,
    Code,
    Currency,
    DecimalNumber,
    Identifier,
    Label,
    LocodeRoute,
    Number,
    UnLocode,
    UtcDatetime,
)

#: Harmonized System commodity code: 2 to 10 digits.
HsCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{2,10}$")]

#: ISO 6346 container number: owner code (3 letters), category (U, J or Z), serial (6 digits), check digit.
ContainerNumber = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}[UJZ][0-9]{7}$")]

#: ISO 6346 size and type code: length, height/width, and a two-character type, e.g. ``45G1``, ``22G1``, ``45R1``.
SizeTypeCode = Annotated[str, StringConstraints(pattern=r"^[1-4A-HK-NP][02-9C-FL-NP][A-Z][0-9A-Z]$")]

#: ISO 6346 letter values: A = 10, skipping the multiples of 11.
_LETTER_VALUES = dict(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", (v for v in range(10, 39) if v % 11), strict=False))


def iso6346_check_digit(number: str) -> int:
    """The check digit of the first ten characters of an ISO 6346 container number."""
    total = sum(
        (_LETTER_VALUES[char] if char.isalpha() else int(char)) << position
        for position, char in enumerate(number[:10])
    )
    return total % 11 % 10


class TransportMode(StrEnum):
    """How the shipment moves."""

    RAIL = "rail"
    SEA = "sea"
    ROAD = "road"
    RAIL_SEA = "rail_sea"
    AIR = "air"


class Milestone(StrEnum):
    """Where the shipment is in its journey."""

    BOOKED = "booked"
    DEPARTED = "departed"
    ARRIVED = "arrived"
    TRANSSHIPPED = "transshipped"
    CUSTOMS_CLEARED = "customs_cleared"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class TimeClassifier(StrEnum):
    """What ``planned_time`` is, as DCSA track and trace classifies times: the plan, or a later estimate."""

    PLANNED = "PLN"
    ESTIMATED = "EST"


#: The milestones that may carry ``planned_arrival`` (the ETA at the destination).
PLANNED_ARRIVAL_MILESTONES = frozenset({Milestone.BOOKED, Milestone.DEPARTED})


class ShipmentEvent(BaseEvent):
    """A shipment reached a milestone; TEU count towards volume on "departed".

    Version 2 of the contract adds the optional fields from ``location`` on; every version 1
    event is valid and means what it meant (docs/interop.md, "Shipment contract version 2")."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"required": ["declared_value"], "properties": {"declared_value": {"type": "number"}}},
            "then": {"required": ["currency"], "properties": {"currency": {"type": "string"}}},
        }
    )

    family: ClassVar[str] = "shipments"

    shipment_id: Identifier = Field(description="Shipment (consignment or booking) identifier.")
    corridor: Code = Field(description="Trade corridor, e.g. ILSTC for the land-sea trade corridor.")
    route: LocodeRoute = Field(description="UN/LOCODEs of the route joined by '-', e.g. CNCKG-CNQZH-SGSIN.")
    mode: TransportMode = Field(description="Transport mode of the shipment.")
    milestone: Milestone = Field(description="Milestone the shipment reached.")
    teu: Annotated[Number, Field(ge=0, le=30_000)] = Field(description="Twenty-foot equivalent units, 0 to 30000.")
    gross_weight_kg: Annotated[Number, Field(ge=0, le=500_000_000)] = Field(
        description="Gross weight in kilograms, 0 to 500000000."
    )
    origin: UnLocode = Field(description="UN/LOCODE of the origin, e.g. CNCKG (Chongqing).")
    destination: UnLocode = Field(description="UN/LOCODE of the destination, e.g. SGSIN (Singapore).")
    carrier: Label = Field(description="Carrier or operator name.")
    currency: Currency | None = Field(None, description="ISO 4217 currency of declared_value; required with a value.")
    declared_value: Annotated[Decimal, DecimalNumber(ge=Decimal(0))] | None = Field(
        None, description="Declared cargo value (>= 0) in `currency`."
    )
    commodity_hs: HsCode | None = Field(None, description="Harmonized System commodity code, 2 to 10 digits.")
    # Version 2: time, place and equipment.
    location: UnLocode | None = Field(
        None,
        description="UN/LOCODE where the milestone happened. Absent: the origin for booked and departed, the "
        "destination for arrived, customs_cleared and delivered.",
    )
    planned_time: UtcDatetime | None = Field(
        None, description="When this milestone was planned to happen: ISO 8601 with a UTC offset."
    )
    planned_time_classifier: TimeClassifier | None = Field(
        None, description="What planned_time is, as in DCSA: PLN (the plan, the default) or EST (a later estimate)."
    )
    planned_arrival: UtcDatetime | None = Field(
        None,
        description="On booked and departed only: when the shipment is planned to arrive at its destination "
        "(the ETA overdue shipments are measured against).",
    )
    equipment_id: ContainerNumber | None = Field(
        None, description="ISO 6346 container number with its check digit, e.g. CSQU3054383."
    )
    equipment_size_type: SizeTypeCode | None = Field(None, description="ISO 6346 size and type code, e.g. 45G1.")
    empty: bool | None = Field(None, strict=True, description="True when the container travels empty.")
    transport_id: Label | None = Field(
        None, description="The train number, or the vessel's IMO number and voyage (e.g. IMO9795610/021S)."
    )

    # Checked on declared_value (defined after currency) so that shipments without a
    # value skip the Python call; an invalid currency is absent from info.data and is
    # reported alone. The error's ``field`` context names the field to fix.
    @field_validator("declared_value")
    @classmethod
    def _value_needs_currency(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        if value is not None and info.data.get("currency", "") is None:
            raise PydanticCustomError("missing", "Field required when declared_value is given", {"field": "currency"})
        return value

    @field_validator("equipment_id")
    @classmethod
    def _check_digit(cls, value: str | None) -> str | None:
        if value is not None and iso6346_check_digit(value) != int(value[10]):
            raise PydanticCustomError(
                "check_digit",
                "ISO 6346 check digit should be {expected}, not {given}",
                {"expected": iso6346_check_digit(value), "given": value[10]},
            )
        return value

    @field_validator("planned_arrival")
    @classmethod
    def _arrival_planned_at_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        milestone = info.data.get("milestone")
        if value is not None and milestone is not None and milestone not in PLANNED_ARRIVAL_MILESTONES:
            raise PydanticCustomError(
                "planned_arrival_milestone",
                "planned_arrival is carried by booked and departed events only, not by {milestone}",
                {"milestone": str(milestone)},
            )
        return value


def example(now: datetime) -> dict[str, Any]:
    """A valid event's fields with realistic corridor values (no event_id or event_time)."""
    return {
        "source": "cq-railway-port",
        "shipment_id": "ILSTC-CKG-" + uuid.uuid4().hex[:8].upper(),
        "corridor": "ILSTC",
        "route": "CNCKG-CNQZH-SGSIN",
        "mode": "rail_sea",
        "milestone": "departed",
        "teu": 2.0,
        "gross_weight_kg": 21_600.0,
        "origin": "CNCKG",
        "destination": "SGSIN",
        "carrier": "COSCO Shipping",
        "currency": "USD",
        "declared_value": 86_500.0,
        "commodity_hs": "847130",
    }
