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
)

#: Harmonized System commodity code: 2 to 10 digits.
HsCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{2,10}$")]


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


class ShipmentEvent(BaseEvent):
    """A shipment reached a milestone; TEU count towards volume on "departed"."""

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

    # Checked on declared_value (defined after currency) so that shipments without a
    # value skip the Python call; an invalid currency is absent from info.data and is
    # reported alone. The error's ``field`` context names the field to fix.
    @field_validator("declared_value")
    @classmethod
    def _value_needs_currency(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        if value is not None and info.data.get("currency", "") is None:
            raise PydanticCustomError("missing", "Field required when declared_value is given", {"field": "currency"})
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
