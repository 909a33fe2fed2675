"""What the HTTP ingest answers: the per-event report of a request, and the reason of a refusal."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.validation import RecordError, RejectReason

#: The reason of a valid event the broker did not confirm in time.
UNDELIVERED = "undelivered"


class FieldProblem(BaseModel):
    """One problem with one field of an event (``schemas.validation.FieldError``)."""

    model_config = ConfigDict(frozen=True)

    field: str = Field(description='Dotted field path, e.g. "teu"; "" for the event as a whole')
    message: str = Field(description='What is wrong and how to fix it, e.g. "must be >= 0 (got -3)"')
    type: str = Field(description='The pydantic error type, or the rule that failed (e.g. "future_event_time")')


class EventProblem(BaseModel):
    """An event that was not accepted: invalid (with the reason a worker would dead-letter it for) or undelivered."""

    model_config = ConfigDict(frozen=True)

    index: int | None = Field(
        description="Position of the event in the body (0 for a body that is one event); null when the body as a "
        "whole was refused (not UTF-8, not JSON, neither an event nor an array, an empty array, too many events)"
    )
    reason: RejectReason | Literal["undelivered"] = Field(
        description="Reject reason, the same code a worker counts in corridor_events_rejected_total; "
        "undelivered: valid, but the broker did not confirm it: send it again"
    )
    message: str = Field(description="One line naming the field and the fix")
    field_errors: list[FieldProblem] = Field(description="Every field problem found (at most 20 per event)")

    @classmethod
    def rejected(cls, error: RecordError, index: int | None) -> EventProblem:
        fields = [FieldProblem(field=e.field, message=e.message, type=e.type) for e in error.field_errors]
        return cls(index=index, reason=error.reason, message=error.message, field_errors=fields)


class IngestReport(BaseModel):
    """What became of the events of one request."""

    model_config = ConfigDict(frozen=True)

    accepted: int = Field(description="Events the broker confirmed")
    rejected: int = Field(description="Invalid events, never sent (a body that holds no event counts as one)")
    undelivered: int = Field(description="Valid events the broker did not confirm in time (503 only)")
    errors: list[EventProblem] = Field(description="The rejected events, then the undelivered ones, by index")


class Problem(BaseModel):
    """Why a request was refused as a whole."""

    detail: str = Field(description="What is wrong and what to do about it")


__all__ = ["UNDELIVERED", "EventProblem", "FieldProblem", "IngestReport", "Problem"]
