"""Which record a partition's state may apply next, so no record is ever passed over (no I/O).

A state applies a partition's records in offset order: the record at ``state.offset + 1``
is next, records at or below ``state.offset`` are already held and are skipped. A record
further on means the consumer passed over records (faust drops records fetched around a
rebalance and does not always read them again). It is not applied: the worker seeks back
to the first missing offset and reads on from there.

Offsets can also be missing from the topic itself (removed by retention, or taken by
transaction markers). Records dropped by the consumer come back after a seek, or the
first record after the seek is another one; a real hole gives the same first record after
every seek. After :data:`HOLE_CONFIRMATIONS` seeks that ended at the same record, the
offsets before it are taken to hold no records and the state moves on.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Seeks that must end at the same record before the offsets before it count as empty.
HOLE_CONFIRMATIONS = 3


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one delivered record."""

    #: Hand the record to the processor (it skips records the state already holds).
    apply: bool
    #: Seek the partition back to this offset (the first the state lacks).
    seek_to: int | None = None
    #: ``(first, last)`` offsets confirmed to hold no records, when the record is applied past them.
    hole: tuple[int, int] | None = None


APPLY = Decision(True)
WAIT = Decision(False)


@dataclass(slots=True)
class OffsetSequence:
    """The order keeper of one partition."""

    seeking: bool = False
    _beyond: int | None = None
    _sightings: int = 0

    def decide(self, state_offset: int, offset: int) -> Decision:
        expected = state_offset + 1
        if offset <= expected:
            self._beyond, self._sightings = None, 0
            return APPLY
        if self.seeking:
            return WAIT
        if offset == self._beyond:
            self._sightings += 1
        else:
            self._beyond, self._sightings = offset, 1
        if self._sightings > HOLE_CONFIRMATIONS:
            self._beyond, self._sightings = None, 0
            return Decision(True, hole=(expected, offset - 1))
        self.seeking = True
        return Decision(False, seek_to=expected)

    def sought(self) -> None:
        """The seek finished: the next record past the expected one counts as a new sighting."""
        self.seeking = False
