"""The dead-letter record: the rejected bytes as they came, and why, in headers."""

from __future__ import annotations

import orjson

from streams.core.processor import DeadLetter

#: Header names of a dead-letter record (values are UTF-8).
SOURCE_TOPIC = "corridor.source_topic"
SOURCE_PARTITION = "corridor.source_partition"
SOURCE_OFFSET = "corridor.source_offset"
SOURCE_INDEX = "corridor.source_index"
REASON = "corridor.reason"
ERROR = "corridor.error"
FIELD_ERRORS = "corridor.field_errors"
TRUNCATED_FROM = "corridor.truncated_from"

#: Largest raw value a dead letter carries: Kafka's default message limit is 1 MiB, and a
#: too-large record must still find its place in the dead-letter topic.
MAX_DEAD_LETTER_BYTES = 900 * 1024


def dead_letter_value(letter: DeadLetter) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The bytes a dead letter carries (cut to MAX_DEAD_LETTER_BYTES) and a header saying so."""
    if len(letter.raw) <= MAX_DEAD_LETTER_BYTES:
        return letter.raw, []
    return letter.raw[:MAX_DEAD_LETTER_BYTES], [(TRUNCATED_FROM, str(len(letter.raw)).encode())]


def dead_letter_headers(source_topic: str, letter: DeadLetter) -> list[tuple[str, bytes]]:
    """Where the record came from (topic, partition, offset, envelope index) and why it was refused.

    (topic, partition, offset, index) identifies a dead letter: a consumer of the
    dead-letter topic can drop a repeat of one it already holds.
    """
    return [
        (SOURCE_TOPIC, source_topic.encode()),
        (SOURCE_PARTITION, str(letter.partition).encode()),
        (SOURCE_OFFSET, str(letter.offset).encode()),
        (SOURCE_INDEX, b"" if letter.index is None else str(letter.index).encode()),
        (REASON, letter.reason.encode()),
        (ERROR, letter.message.encode()),
        (FIELD_ERRORS, orjson.dumps([
            {"field": e.field, "message": e.message, "type": e.type} for e in letter.field_errors
        ])),
    ]


def parse_dead_letter_headers(headers: list[tuple[str, bytes]]) -> dict[str, object]:
    """The headers of a dead-letter record as a dict (for tools and tests)."""
    raw = dict(headers)
    index = raw.get(SOURCE_INDEX, b"")
    return {
        "source_topic": raw[SOURCE_TOPIC].decode(),
        "source_partition": int(raw[SOURCE_PARTITION]),
        "source_offset": int(raw[SOURCE_OFFSET]),
        "index": int(index) if index else None,
        "reason": raw[REASON].decode(),
        "error": raw[ERROR].decode(),
        "field_errors": orjson.loads(raw[FIELD_ERRORS]),
        "truncated_from": int(raw[TRUNCATED_FROM]) if TRUNCATED_FROM in raw else None,
    }
