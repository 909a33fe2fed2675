"""Flights on the Chongqing-Singapore air links."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import Field, StringConstraints

from schemas.common import BaseEvent, IataCarrier, IataRoute, Identifier, Integer, Number, UtcDatetime, utc_iso

#: Flight number, optionally with the airline designator: ``108``, ``TR108`` or ``8561A``.
FlightNumber = Annotated[str, StringConstraints(pattern=r"^([A-Z0-9]{2})?[0-9]{1,4}[A-Z]?$")]


class FlightService(StrEnum):
    """What the flight carries."""

    PASSENGER = "passenger"
    CARGO = "cargo"


class FlightStatus(StrEnum):
    """Operational status of the flight."""

    SCHEDULED = "scheduled"
    DEPARTED = "departed"
    ARRIVED = "arrived"
    CANCELLED = "cancelled"
    DIVERTED = "diverted"


class FlightEvent(BaseEvent):
    """A flight changed status; a flight counts as operated on "departed"."""

    family: ClassVar[str] = "flights"

    flight_id: Identifier = Field(description="Identifier of this flight (one departure of a flight number).")
    carrier: IataCarrier = Field(description="IATA airline designator, e.g. TR (Scoot), 3U (Sichuan Airlines), SQ.")
    flight_number: FlightNumber = Field(description="Flight number, with or without the designator, e.g. TR108.")
    service: FlightService = Field(description="Passenger or cargo service.")
    route: IataRoute = Field(description="IATA airport codes joined by '-', e.g. CKG-SIN.")
    status: FlightStatus = Field(description="Status the flight reached.")
    scheduled_time: UtcDatetime = Field(
        description="Scheduled time of this status (departure or arrival), with offset."
    )
    actual_time: UtcDatetime | None = Field(None, description="Actual time of this status, with offset.")
    passengers: Annotated[Integer, Field(ge=0, le=1_000)] | None = Field(
        None, description="Passengers on board, 0 to 1000."
    )
    cargo_kg: Annotated[Number, Field(ge=0, le=300_000)] | None = Field(
        None, description="Cargo on board in kilograms, 0 to 300000."
    )

    @property
    def delay_seconds(self) -> float | None:
        """Actual minus scheduled time in seconds (negative when early); None without an actual time."""
        if self.actual_time is None:
            return None
        return (self.actual_time - self.scheduled_time).total_seconds()


def example(now: datetime) -> dict[str, Any]:
    """A valid event's fields with realistic corridor values (no event_id or event_time)."""
    return {
        "source": "scoot-ops",
        "flight_id": f"TR108-{now:%Y%m%d}",
        "carrier": "TR",
        "flight_number": "TR108",
        "service": "passenger",
        "route": "CKG-SIN",
        "status": "departed",
        "scheduled_time": utc_iso(now - timedelta(minutes=15)),
        "actual_time": utc_iso(now),
        "passengers": 186,
        "cargo_kg": 2_400.0,
    }
