"""Event models of the corridor's four event families."""

from __future__ import annotations

from schemas.common import BaseEvent
from schemas.datachannel import DataChannelSample, Direction
from schemas.finance import FinanceEvent, FinanceStatus, Instrument
from schemas.flights import FlightEvent, FlightService, FlightStatus
from schemas.shipments import Milestone, ShipmentEvent, TransportMode

__all__ = [
    "BaseEvent",
    "DataChannelSample",
    "Direction",
    "FinanceEvent",
    "FinanceStatus",
    "FlightEvent",
    "FlightService",
    "FlightStatus",
    "Instrument",
    "Milestone",
    "ShipmentEvent",
    "TransportMode",
]
