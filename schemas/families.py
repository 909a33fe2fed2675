"""The corridor's event families: each one's topic, message key, event model and example.

This is the one declaration of what a family is in the public contract; everything else
(validation, JSON Schema export, the SDK, the worker, the simulator) reads it from here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from schemas import datachannel, finance, flights, shipments
from schemas.common import BaseEvent


@dataclass(frozen=True, slots=True)
class EventFamily:
    """One event family as producers see it."""

    topic: str  # the Kafka topic its events are published to
    key_field: str  # the event field whose value is the message key
    model: type[BaseEvent]  # the pydantic model of one event
    example: Callable[[datetime], dict[str, Any]]  # a valid event's fields (no event_id/event_time) at a moment

    @property
    def name(self) -> str:
        """The family's name in the CLI, the SDK, metrics (label ``stream``) and dead letters."""
        return self.model.family


SHIPMENTS = EventFamily(
    model=shipments.ShipmentEvent, topic="corridor.shipments.v1", key_field="route", example=shipments.example
)
FLIGHTS = EventFamily(
    model=flights.FlightEvent, topic="corridor.flights.v1", key_field="route", example=flights.example
)
FINANCE = EventFamily(
    model=finance.FinanceEvent, topic="corridor.finance.v1", key_field="instrument", example=finance.example
)
DATACHANNEL = EventFamily(
    model=datachannel.DataChannelSample,
    topic="corridor.datachannel.v1",
    key_field="link_id",
    example=datachannel.example,
)

#: Every family by name, in the order the CLI, the view and the docs list them.
FAMILIES: Mapping[str, EventFamily] = MappingProxyType(
    {family.name: family for family in (SHIPMENTS, FLIGHTS, FINANCE, DATACHANNEL)}
)
FAMILY_NAMES: tuple[str, ...] = tuple(FAMILIES)

#: Where every rejected record (or rejected event of an envelope) goes, with its reason in headers.
DEADLETTER_TOPIC = "corridor.deadletter.v1"


def event_family(name: str) -> EventFamily:
    """The family called ``name``; a ValueError naming the known families otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown event family {name!r}; expected one of {', '.join(FAMILIES)}") from None
