"""Valid example events with realistic corridor values, for tests, demos and docs."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any


def sample_event(family: str, **overrides: Any) -> dict[str, Any]:
    """A valid JSON-ready event of ``family``: a fresh event_id, event_time now (UTC), then ``overrides``."""
    try:
        build = _BUILDERS[family]
    except KeyError:
        raise ValueError(f"unknown event family {family!r}; expected one of {', '.join(_BUILDERS)}") from None
    now = datetime.now(UTC).replace(microsecond=0)
    event = {"event_id": uuid.uuid4().hex, "event_time": _iso(now)} | build(now)
    return event | overrides


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _shipment(now: datetime) -> dict[str, Any]:
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


def _flight(now: datetime) -> dict[str, Any]:
    return {
        "source": "scoot-ops",
        "flight_id": f"TR108-{now:%Y%m%d}",
        "carrier": "TR",
        "flight_number": "TR108",
        "service": "passenger",
        "route": "CKG-SIN",
        "status": "departed",
        "scheduled_time": _iso(now - timedelta(minutes=15)),
        "actual_time": _iso(now),
        "passengers": 186,
        "cargo_kg": 2_400.0,
    }


def _finance(now: datetime) -> dict[str, Any]:
    return {
        "source": "sg-bank-trade-desk",
        "transaction_id": "CCI-FIN-" + uuid.uuid4().hex[:8].upper(),
        "instrument": "syndicated_loan",
        "amount": 150_000_000.0,
        "currency": "SGD",
        "lender_country": "SG",
        "borrower_country": "CN",
        "status": "signed",
        "borrower_region": "Chongqing",
    }


def _datachannel(now: datetime) -> dict[str, Any]:
    return {
        "source": "cq-sg-link-monitor",
        "link_id": "CQ-SG-1",
        "direction": "cn_to_sg",
        "interval_seconds": 60,
        "bytes": 7_500_000_000,
        "latency_ms": 42.5,
        "packet_loss_ratio": 0.0004,
    }


_BUILDERS: dict[str, Callable[[datetime], dict[str, Any]]] = {
    "shipments": _shipment,
    "flights": _flight,
    "finance": _finance,
    "datachannel": _datachannel,
}
