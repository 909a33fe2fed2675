"""What the HTTP ingest must answer to each case of the hostile corpus (tests/hostile.py) that has a body.

The answer follows from the case's Kafka outcome, less what belongs to a Kafka record alone:

- The ingest limits the body (``CORRIDOR_INGEST_MAX_BODY_BYTES``): a body past it is a 413,
  refused before it is read, so no event of it is judged.
- The ingest splits a body into records itself, so the record size limit judges each event,
  not the body: a small event padded past the limit with JSON whitespace is accepted (the
  publisher writes it compactly).
- A body that is one JSON object is one event: its rejection is that event's, at index 0.
  Any other whole-body rejection (not UTF-8, not JSON, not an object or array, an empty
  array, too many events) has index null and counts every item the body held.

Used by the unit test (tests/unit/ingest/test_hostile.py) and by the integration test against
a real broker and worker (tests/integration/test_ingest.py).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from streams.settings import Settings
from tests.hostile import RECORD_SIZE_CASES, Case, Rejection

#: The body limit the answers are worked out for: the settings' default, whatever the environment says.
INGEST_MAX_BODY_BYTES: int = Settings.model_fields["ingest_max_body_bytes"].default


@dataclass(frozen=True)
class HttpAnswer:
    """The status and report the ingest must answer with (a 413 has no report)."""

    status: int
    #: (index, reason) of each error of the report, in order.
    errors: tuple[Rejection, ...]
    #: Events refused (the report's ``rejected``).
    rejected: int
    #: The events published and counted (the report's ``accepted``), as sent.
    accepted: tuple[dict[str, Any], ...]

    @property
    def accepted_ids(self) -> list[str]:
        return [event["event_id"] for event in self.accepted]

    def rejected_by_reason(self) -> Counter[str]:
        """Events refused by reason, as ``corridor_ingest_events_rejected_total`` counts them."""
        counts: Counter[str] = Counter()
        for index, reason in self.errors:
            counts[reason] += self.rejected if index is None else 1  # a whole-body refusal is the only error
        return counts


def expected_answer(case: Case, body: bytes, max_body_bytes: int = INGEST_MAX_BODY_BYTES) -> HttpAnswer:
    """The answer to ``POST /v1/events/{case.family}`` with ``body`` from a token that may publish it."""
    if len(body) > max_body_bytes:
        return HttpAnswer(413, (), 0, ())
    accepted, rejected = case.accepted, case.rejected
    if case.name in RECORD_SIZE_CASES:
        accepted, rejected = (json.loads(body),), ()
    one_event = _is_one_object(body)
    errors = tuple((0 if index is None and one_event else index, reason) for index, reason in rejected)
    return HttpAnswer(202 if accepted else 422, errors, case.received - len(accepted), accepted)


def _is_one_object(body: bytes) -> bool:
    """Whether ``body`` is UTF-8 JSON text of one object (valid as an event or not)."""
    try:
        return isinstance(json.loads(body.decode("utf-8")), dict)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return False


__all__ = ["INGEST_MAX_BODY_BYTES", "HttpAnswer", "expected_answer"]
