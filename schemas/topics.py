"""Topic names and message keys of each event family (the public contract)."""

from __future__ import annotations

FAMILY_TOPICS: dict[str, str] = {
    "shipments": "corridor.shipments.v1",
    "flights": "corridor.flights.v1",
    "finance": "corridor.finance.v1",
    "datachannel": "corridor.datachannel.v1",
}
DEADLETTER_TOPIC = "corridor.deadletter.v1"

#: The event field whose value is the message key of each family.
FAMILY_KEYS: dict[str, str] = {
    "shipments": "route",
    "flights": "route",
    "finance": "instrument",
    "datachannel": "link_id",
}
