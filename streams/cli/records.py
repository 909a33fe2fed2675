"""What ``corridor validate`` and ``corridor publish`` share: reading the input in chunks, the tally and its report."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import IO, Any

import click
import orjson

from schemas.families import FAMILY_NAMES
from schemas.validation import RecordError, RejectReason, ValidationRules, validate_record
from streams.cli.base import InputError

#: Events validated (and published) per round; bounds memory for any input size.
CHUNK_EVENTS = 5000


@dataclass
class Tally:
    """What a validate or publish run found, as the ``--json`` summary reports it."""

    numbering: str = "line"  #: "line" for JSON Lines, "item" for a JSON array
    valid: int = 0
    invalid: int = 0
    published: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    undelivered: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, number: int, error: RecordError) -> None:
        self.invalid += 1
        self.errors.append(
            {
                "line": number,
                "reason": str(error.reason),
                "message": error.message,
                "field_errors": [asdict(field_error) for field_error in error.field_errors],
            }
        )

    def summary(self, published: bool) -> dict[str, Any]:
        result: dict[str, Any] = {"valid": self.valid, "invalid": self.invalid, "published": self.published}
        if published:
            result["undelivered"] = len(self.undelivered)
        result["numbering"] = self.numbering
        result["errors"] = self.errors + self.undelivered
        return result


@dataclass
class Chunk:
    numbers: list[int]  #: line (or item) number of each object
    objects: list[Any]
    consumed: int  #: input bytes (or items) this chunk covers, for the progress bar


def read_chunks(stream: IO[bytes], family: str, rules: ValidationRules, tally: Tally) -> Iterator[Chunk]:
    """Parse JSON Lines, or one JSON array, from ``stream``; unparsable lines go to ``tally``."""
    lines = iter(stream)
    number, consumed, seen_content = 0, 0, False
    numbers: list[int] = []
    objects: list[Any] = []
    for line in lines:
        number += 1
        consumed += len(line)
        text = line.strip()
        if not text:
            continue
        if not seen_content and text.startswith(b"["):
            tally.numbering = "item"
            yield from _array_chunks(line + b"".join(lines), number, tally)
            return
        seen_content = True
        try:
            objects.append(orjson.loads(text))
            numbers.append(number)
        except orjson.JSONDecodeError:
            # Judged as a worker would judge it: bad UTF-8, bad JSON, or JSON that only
            # a laxer parser reads (NaN, say) and the schema then rules on.
            result = validate_record(family, text, rules)
            for error in result.errors:
                tally.reject(number, error)
            numbers += [number] * len(result.events)
            objects += result.events
        if len(objects) >= CHUNK_EVENTS:
            yield Chunk(numbers, objects, consumed)
            numbers, objects, consumed = [], [], 0
    yield Chunk(numbers, objects, consumed)


def _array_chunks(document: bytes, first_line: int, tally: Tally) -> Iterator[Chunk]:
    try:
        items = orjson.loads(document)
    except orjson.JSONDecodeError as exc:
        # Nothing can be numbered by item in a broken array: point at its line.
        tally.numbering = "line"
        line = first_line + exc.lineno - 1
        message = f"not a valid JSON array: {exc.msg} at line {line} column {exc.colno}"
        tally.reject(line, RecordError(None, RejectReason.INVALID_JSON, message, (), b""))
        yield Chunk([], [], len(document))
        return
    for start in range(0, len(items), CHUNK_EVENTS):
        chunk = items[start : start + CHUNK_EVENTS]
        share = len(document) * len(chunk) // len(items)
        yield Chunk(list(range(start + 1, start + len(chunk) + 1)), chunk, share)
    if not items:
        yield Chunk([], [], len(document))


def record_rejections(tally: Tally, numbers: list[int], rejections: Iterable[RecordError]) -> None:
    for rejection in rejections:
        tally.reject(numbers[rejection.index or 0], rejection)


def open_input(file: str) -> IO[bytes]:
    if file == "-":
        return sys.stdin.buffer
    try:
        return open(file, "rb")  # noqa: SIM115 - closed by the caller's ``with``
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror or exc}") from None


def _input_size(stream: IO[bytes]) -> int | None:
    """Size of a regular file; None for pipes and terminals."""
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return None
    return status.st_size if stat.S_ISREG(status.st_mode) else None


@contextmanager
def progress(stream: IO[bytes], label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when it is a terminal; yields ``advance(bytes)``."""
    if not sys.stderr.isatty():
        yield lambda _consumed: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=_input_size(stream))
        yield lambda consumed: bar.advance(task, consumed)


def finish(tally: Tally, as_json: bool, published: bool) -> None:
    """Report every rejection in input order and the totals; exit 1 if any event was invalid or undelivered."""
    tally.errors.sort(key=lambda error: error["line"])
    _report(tally, as_json, published)
    click.get_current_context().exit(1 if tally.invalid or tally.undelivered else 0)


def _report(tally: Tally, as_json: bool, published: bool) -> None:
    if as_json:
        click.echo(orjson.dumps(tally.summary(published)).decode())
        return
    for error in tally.errors:
        click.echo(f"{tally.numbering} {error['line']}: {error['reason']}: {error['message']}", err=True)
        if len(error["field_errors"]) > 1:
            for item in error["field_errors"]:
                click.echo(f"    {item['field'] or 'event'}: {item['message']}", err=True)
    if tally.undelivered:
        first, last = tally.undelivered[0], tally.undelivered[-1]
        click.echo(
            f"{len(tally.undelivered)} valid events not delivered ({tally.numbering}s {first['line']}"
            f"-{last['line']}): {first['message']}",
            err=True,
        )
    summary = f"{tally.valid} valid, {tally.invalid} invalid"
    click.echo(f"{summary}, {tally.published} published" if published else summary)


family_argument = click.argument("family", type=click.Choice(FAMILY_NAMES))
file_argument = click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
json_option = click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of text.")
