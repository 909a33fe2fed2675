"""The producer SDK: validate corridor events as a worker would, publish them in keyed batches, report each one.

::

    from streams.sdk import Publisher

    async with Publisher(settings) as publisher:
        report = await publisher.publish("shipments", events)

Importing it changes nothing in aiokafka: the SDK's own producer speaks InitProducerId v3
(streams/sdk/aiokafka_compat.py), other aiokafka producers of the process are left alone.
"""

from __future__ import annotations

from streams.sdk.producer import (
    DELIVERED,
    INVALID,
    UNDELIVERED,
    Envelope,
    EventOutcome,
    Publisher,
    PublishReport,
    Status,
    build_envelopes,
    message_key,
    validate_events,
)

__all__ = [
    "DELIVERED",
    "INVALID",
    "UNDELIVERED",
    "Envelope",
    "EventOutcome",
    "PublishReport",
    "Publisher",
    "Status",
    "build_envelopes",
    "message_key",
    "validate_events",
]
