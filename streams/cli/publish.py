"""``corridor publish``: validate a file of events and publish the valid ones through the SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import IO, Any

from streams.cli.base import cli, setup
from streams.cli.records import (
    Tally,
    family_argument,
    file_argument,
    finish,
    json_option,
    open_input,
    progress,
    read_chunks,
    record_rejections,
)
from streams.settings import Settings


@cli.command()
@family_argument
@file_argument
@json_option
def publish(family: str, file: str, as_json: bool) -> None:
    """Validate FILE (JSON Lines or a JSON array; - for stdin) and publish FAMILY's valid events in batches."""
    settings = setup()
    tally = Tally()
    with open_input(file) as stream, progress(stream, f"publishing {family}") as advance:
        asyncio.run(_publish_chunks(settings, family, stream, tally, advance))
    finish(tally, as_json, published=True)


async def _publish_chunks(
    settings: Settings, family: str, stream: IO[bytes], tally: Tally, advance: Callable[[int], None]
) -> None:
    from streams.sdk.producer import DELIVERED, Publisher, validate_events

    gave_up: str | None = None  # once a round went undelivered, later rounds are only validated
    async with Publisher(settings) as publisher:
        for chunk in read_chunks(stream, family, publisher.rules, tally):
            if gave_up is not None:
                result = validate_events(family, chunk.objects, publisher.rules)
                record_rejections(tally, chunk.numbers, result.errors)
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
                elif outcome.rejection is not None:  # invalid: never sent
                    tally.reject(number, outcome.rejection)
                else:
                    tally.valid += 1
                    gave_up = outcome.error or "not acknowledged"
                    tally.undelivered.append(_undelivered(number, gave_up))
            advance(chunk.consumed)


def _undelivered(number: int, message: str) -> dict[str, Any]:
    return {"line": number, "reason": "undelivered", "message": message, "field_errors": []}
