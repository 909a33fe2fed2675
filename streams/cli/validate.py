"""``corridor validate``: check a file of events without publishing."""

from __future__ import annotations

from schemas.validation import ValidationRules
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


@cli.command()
@family_argument
@file_argument
@json_option
def validate(family: str, file: str, as_json: bool) -> None:
    """Check FILE (JSON Lines or a JSON array; - for stdin) against FAMILY's event schema."""
    from streams.sdk.producer import validate_events

    settings = setup()
    rules = ValidationRules.from_settings(settings)
    tally = Tally()
    with open_input(file) as stream, progress(stream, f"validating {family}") as advance:
        for chunk in read_chunks(stream, family, rules, tally):
            result = validate_events(family, chunk.objects, rules)
            tally.valid += len(result.events)
            record_rejections(tally, chunk.numbers, result.errors)
            advance(chunk.consumed)
    finish(tally, as_json, published=False)
