"""Traffic samples of the China-Singapore international data channel."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import Field

from schemas.common import BaseEvent, Identifier, Integer, Number


class Direction(StrEnum):
    """Direction of the traffic on the link."""

    CN_TO_SG = "cn_to_sg"
    SG_TO_CN = "sg_to_cn"


class DataChannelSample(BaseEvent):
    """Traffic of one link direction over one sampling interval; bytes count on every sample."""

    family: ClassVar[str] = "datachannel"

    link_id: Identifier = Field(description="Link identifier, e.g. CQ-SG-1.")
    direction: Direction = Field(description="Direction of the traffic.")
    interval_seconds: Annotated[Integer, Field(ge=1, le=3600)] = Field(
        description="Length of the sampling interval ending at event_time, 1 to 3600 seconds."
    )
    bytes: Annotated[Integer, Field(ge=0, le=2**63 - 1)] = Field(
        description="Bytes carried in this direction during the interval."
    )
    latency_ms: Annotated[Number, Field(ge=0, le=3_600_000)] | None = Field(
        None, description="Mean round-trip latency over the interval in milliseconds."
    )
    packet_loss_ratio: Annotated[Number, Field(ge=0, le=1)] | None = Field(
        None, description="Share of packets lost over the interval, 0 to 1."
    )


def example(now: datetime) -> dict[str, Any]:
    """A valid event's fields with realistic corridor values (no event_id or event_time)."""
    return {
        "source": "cq-sg-link-monitor",
        "link_id": "CQ-SG-1",
        "direction": "cn_to_sg",
        "interval_seconds": 60,
        "bytes": 7_500_000_000,
        "latency_ms": 42.5,
        "packet_loss_ratio": 0.0004,
    }
