"""Valid example events with realistic corridor values, for tests, demos and docs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from schemas.common import utc_iso
from schemas.families import event_family


def sample_event(family: str, *, at: datetime | None = None, **overrides: Any) -> dict[str, Any]:
    """A valid JSON-ready event of ``family``: a fresh event_id, event_time ``at`` (default now, UTC) and
    the example's other times around it, then ``overrides``."""
    example = event_family(family).example
    now = at if at is not None else datetime.now(UTC).replace(microsecond=0)
    event = {"event_id": uuid.uuid4().hex, "event_time": utc_iso(now)} | example(now)
    return event | overrides
