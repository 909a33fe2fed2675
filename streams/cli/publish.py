"""``corridor publish``: validate a file of events and publish the valid ones through the SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import IO, Any

import click

from streams.cli.base import _setup, cli
from streams.cli.records import (
    _chunks,
    _exit_code,
    _open_input,
    _progress,
    _record_rejections,
    _report,
    _Tally,
    family_argument,
    file_argument,
    json_option,
)
from streams.settings import Settings


@cli.command()
@family_argument
@file_argument
@json_option
def publish(family: str, file: str, as_json: bool) -> None:
    """Validate FILE (JSON Lines or a JSON array; - for stdin) and publish FAMILY's valid events in batches."""
    settings = _setup()
    tally = _Tally()
    with _open_input(file) as stream, _progress(stream, f"publishing {family}") as advance:
        asyncio.run(_publish_chunks(settings, family, stream, tally, advance))
    tally.errors.sort(key=lambda error: error["line"])
    _report(tally, as_json, published=True)
    click.get_current_context().exit(_exit_code(tally))


async def _publish_chunks(
    settings: Settings, family: str, stream: IO[bytes], tally: _Tally, advance: Callable[[int], None]
) -> None:
    from streams.sdk.producer import DELIVERED, INVALID, Publisher, validate_events

    gave_up: str | None = None  # once a round went undelivered, later rounds are only validated
    async with Publisher(settings) as publisher:
        for chunk in _chunks(stream, family, publisher.rules, tally):
            if gave_up is not None:
                result = validate_events(family, chunk.objects, publisher.rules)
                _record_rejections(tally, chunk.numbers, result.errors)
                rejected = {error.index for error in result.errors}
                for index, number in enumerate(chunk.numbers):
                    if index not in rejected:
                        tally.valid += 1
                        tally.undelivered.append(_undelivered(number, f"not sent after earlier failures: {gave_up}"))
                advance(chunk.consumed)
                continue
            report = await publisher.publish(family, chunk.objects)
            for number, outcome in zip(chunk.numbers, report.outcomes, strict=True):
                if outcome.status == DELIVERED:
                    tally.valid += 1
                    tally.published += 1
                elif outcome.status == INVALID:
                    tally.reject(number, outcome.rejection)  # type: ignore[arg-type]
                else:
                    tally.valid += 1
                    gave_up = outcome.error or "not acknowledged"
                    tally.undelivered.append(_undelivered(number, gave_up))
            advance(chunk.consumed)


def _undelivered(number: int, message: str) -> dict[str, Any]:
    return {"line": number, "reason": "undelivered", "message": message, "field_errors": []}
