"""``corridor validate``: check a file of events without publishing."""

from __future__ import annotations

import click

from schemas.validation import ValidationRules
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


@cli.command()
@family_argument
@file_argument
@json_option
def validate(family: str, file: str, as_json: bool) -> None:
    """Check FILE (JSON Lines or a JSON array; - for stdin) against FAMILY's event schema."""
    from streams.sdk.producer import validate_events

    settings = _setup()
    rules = ValidationRules.from_settings(settings)
    tally = _Tally()
    with _open_input(file) as stream, _progress(stream, f"validating {family}") as advance:
        for chunk in _chunks(stream, family, rules, tally):
            result = validate_events(family, chunk.objects, rules)
            tally.valid += len(result.events)
            _record_rejections(tally, chunk.numbers, result.errors)
            advance(chunk.consumed)
    tally.errors.sort(key=lambda error: error["line"])
    _report(tally, as_json, published=False)
    click.get_current_context().exit(_exit_code(tally))
