"""Shipments in flight: one journey per shipment, inside its route's partition (pure, no I/O).

Transit time, leg times, hub dwell and overdue shipments need what an earlier event of the
same shipment said. A :class:`JourneyBook` holds, per source partition, one
:class:`Journey` for every shipment between its first milestone and its last: it starts at
``booked``, ``departed``, ``transshipped`` or an ``arrived`` short of the destination, and
leaves the book at the ``arrived`` at its destination (after its transit time is observed),
at ``delivered``, at ``cancelled``, or when nothing was heard of it for the horizon
(``CORRIDOR_SHIPMENT_HORIZON``), counted in ``corridor_shipments_evicted_total``.

What a journey does with each milestone (docs/semantics.md, "Transit, dwell and on time"):

- ``departed`` at ``L``: the first departure at the origin starts the transit clock; a
  departure at a place the shipment arrived at ends its dwell there; every departure starts
  a leg from ``L``. ``planned_arrival`` (on ``booked`` and ``departed``) sets the ETA.
- ``arrived`` at ``L``: ends the leg begun by the last departure (``A-L``); at the
  destination it ends the transit and the journey; elsewhere it starts a dwell at ``L``.
- Without ``location`` (a version 1 event) a milestone happens at the origin (``booked``,
  ``departed``) or at the destination (``arrived``, ``customs_cleared``, ``delivered``).

A duration is observed only when its start was applied before its end and it is not
negative; events of one shipment arrive in the order they happened (one producer, one key).
Times are kept in integer milliseconds of event time, so a duration is the difference of its
ends each rounded to the millisecond, and a journey holds objects of its own, never an event's.

Eviction is decided by the partition's clock (its newest record timestamp), never the wall
clock, so a replay evicts the same journeys at the same records: a journey whose newest
event-time hour lies before the hour of ``clock - horizon`` is gone, whether it is swept at
the end of a batch or found when its next event arrives.

Checkpoints are incremental: each one appends a *piece* holding the journeys changed since
the last confirmed checkpoint (and the ids that left), and the head record lists the pieces
that rebuild the book; once the pieces hold more than twice as many rows as the book has journeys, the next
checkpoint writes the whole book as a new first piece instead, and removes the older ones
after its head (streams/core/checkpoint.py). Every piece is written as chunks of at most
:data:`ROWS_PER_CHUNK` rows, so no record outgrows a broker's message limit.
"""

from __future__ import annotations

import bisect
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.shipments import ShipmentEvent
from streams.core.series import Labels

HOUR = 3600
HOUR_MS = HOUR * 1000
#: Journey rows per changelog record: a row is at most about 450 bytes, so a record stays below 0.5 MB.
ROWS_PER_CHUNK = 1024
#: The book is written whole again once its pieces would hold more than twice its journeys plus this many
#: rows: a restore reads at most about three rows per journey, and a checkpoint writes, over time, at most
#: about three rows per change.
COMPACT_SLACK = 1024
#: Where a worker serves its :func:`overdue_report` on its web port (``corridor shipments overdue`` reads it).
OVERDUE_PATH = "/shipments/overdue"

# Milestones, as the event contract spells them.
BOOKED, DEPARTED, ARRIVED, TRANSSHIPPED = "booked", "departed", "arrived", "transshipped"
CUSTOMS_CLEARED, DELIVERED, CANCELLED = "customs_cleared", "delivered", "cancelled"
#: Milestones that start a journey the book does not hold yet (an ``arrived`` only short of the destination).
_STARTS = frozenset({BOOKED, DEPARTED, TRANSSHIPPED, ARRIVED})
#: Milestones that happen at the origin, and at the destination, when the event names no location.
_AT_ORIGIN = frozenset({BOOKED, DEPARTED})
_AT_DESTINATION = frozenset({ARRIVED, CUSTOMS_CLEARED, DELIVERED})


@dataclass(slots=True)
class Journey:
    """What the book keeps of one shipment in flight (times in epoch milliseconds, event time)."""

    shipment_id: str
    corridor: str
    route: str
    mode: str
    #: ``(corridor, route, mode)`` labels, from the registry at the journey's first event.
    labels: Labels
    origin: str
    destination: str
    last_milestone: str
    last_location: str | None
    last_event_time: int
    #: The newest event time heard of the shipment (what the horizon is measured from).
    newest: int
    departed: int | None = None  # first departure at the origin
    planned_arrival: int | None = None
    dwell_at: str | None = None  # where it arrived and has not departed from yet
    dwell_since: int | None = None
    leg_from: str | None = None  # where it last departed from, not arrived anywhere since
    leg_since: int | None = None

    def row(self) -> list[Any]:
        return [self.shipment_id, self.corridor, self.route, self.mode, list(self.labels), self.origin,
                self.destination, self.last_milestone, self.last_location, self.last_event_time, self.newest,
                self.departed, self.planned_arrival, self.dwell_at, self.dwell_since, self.leg_from, self.leg_since]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Journey:
        (shipment_id, corridor, route, mode, labels, origin, destination, last_milestone, last_location,
         last_event_time, newest, departed, planned_arrival, dwell_at, dwell_since, leg_from, leg_since) = row
        return cls(shipment_id, corridor, route, mode, tuple(labels), origin, destination, last_milestone,
                   last_location, last_event_time, newest, departed, planned_arrival, dwell_at, dwell_since,
                   leg_from, leg_since)


class Observer:
    """What the book reports while it applies milestones (the measure function turns them into contributions)."""

    def transit(self, labels: Labels, millis: int) -> None: ...

    def leg(self, labels: Labels, start: str, end: str, millis: int) -> None: ...

    def dwell(self, labels: Labels, location: str, millis: int) -> None: ...

    def evicted(self, labels: Labels) -> None: ...


@dataclass(frozen=True, slots=True)
class Overdue:
    """A shipment past its planned arrival (plus the tolerance of its mode), for the exception list."""

    journey: Journey
    deadline: int  # milliseconds
    late_seconds: float


@dataclass(frozen=True, slots=True)
class Piece:
    """A changelog piece of the book: ``chunks`` records under one sequence number."""

    number: int
    chunks: int
    rows: int  # journeys and departures it holds (what compaction weighs)


@dataclass(frozen=True, slots=True)
class JourneyPlan:
    """What a checkpoint writes of the book, and what the head names."""

    #: ``(piece number, chunk index, value)`` records to write before the head.
    records: tuple[tuple[int, int, bytes], ...]
    #: The pieces the head names, oldest first: the book is rebuilt from them in order.
    pieces: tuple[Piece, ...]
    #: ``(piece number, chunks)`` to delete after the head.
    removed: tuple[tuple[int, int], ...]
    #: Journeys changed since the last confirmed checkpoint, which this one makes durable.
    changed: frozenset[str]


class JourneyBook:
    """The journeys of one source partition, their in-transit and deadline counts, and their checkpoint pieces."""

    def __init__(self, horizon: float, tolerance: Mapping[str, float]) -> None:
        self.horizon = horizon
        #: Seconds past ``planned_arrival`` before a shipment counts as overdue, by mode.
        self.tolerance = dict(tolerance)
        self._tolerance_ms = {mode: round(seconds * 1000) for mode, seconds in tolerance.items()}
        #: One copy of each label set and name the journeys share (label sets come from the registry: bounded).
        self._shared: dict[Any, Any] = {}
        self.journeys: dict[str, Journey] = {}
        #: Shipment ids by the hour of their newest event time (what eviction sweeps).
        self._by_hour: dict[int, set[str]] = {}
        #: No hour of ``_by_hour`` is older than this (a bound: the hour itself may have emptied since).
        self._oldest_hour = 2**62
        #: Departed journeys by labels; and their deadlines (planned arrival + tolerance) by labels.
        self.in_transit: Counter[Labels] = Counter()
        self.deadlines: dict[Labels, Counter[int]] = {}
        # Checkpoint bookkeeping.
        self._changed: set[str] = set()
        self._planned: frozenset[str] = frozenset()  # of the newest plan not confirmed yet
        self._durable: tuple[Piece, ...] = ()
        self._next_piece = 0
        #: Pieces a changelog may hold besides the durable ones (planned, maybe written), to delete.
        self._strays: dict[int, int] = {}
        #: The newest plan wrote the book whole and is not confirmed: it may have removed the durable pieces.
        self._compacting = False

    def __len__(self) -> int:
        return len(self.journeys)

    # Applying milestones.

    def apply(self, events: Sequence[ShipmentEvent], times: Sequence[float], clocks: Sequence[float],
              labels_of: Callable[[str, str, str], Labels], observer: Observer) -> None:
        """Apply accepted shipment events in order: their event times (epoch seconds), the partition's clock
        at each one's record, and the labels of a (corridor, route, mode) for the journeys they start.

        A journey past the horizon at an event's clock is evicted before the event applies, as
        it would have been by :meth:`evict` at that event's record; the caller sweeps the rest
        with the clock of the last record it applied.
        """
        get = self.journeys.get
        last_clock, cutoff = None, 0
        for event, event_time, clock in zip(events, times, clocks, strict=True):
            journey = get(event.shipment_id)
            if journey is not None:
                if clock != last_clock:
                    last_clock, cutoff = clock, self._cutoff(clock)
                if journey.newest // HOUR_MS < cutoff:
                    self._drop(journey)
                    observer.evicted(journey.labels)
                    journey = None
            self._apply(journey, event, round(event_time * 1000), labels_of, observer)

    def _apply(self, journey: Journey | None, event: ShipmentEvent, at: int,
               labels_of: Callable[[str, str, str], Labels], observer: Observer) -> None:
        milestone = event.milestone.value  # the enum's own string: no copy per journey
        place = event.location
        if place is None:  # the contract's default: booked, departed at the origin; arrived and on at the destination
            place = event.origin if milestone in _AT_ORIGIN else event.destination if milestone in _AT_DESTINATION \
                else None
        if journey is None:
            if milestone not in _STARTS or (milestone == ARRIVED and place == event.destination):
                return
            shared, mode = self._shared, event.mode.value
            labels = labels_of(event.corridor, event.route, mode)
            journey = Journey(event.shipment_id, sys.intern(event.corridor), sys.intern(event.route),
                              shared.setdefault(mode, mode), shared.setdefault(labels, labels),
                              sys.intern(event.origin), sys.intern(event.destination), milestone, place, at, at)
            self.journeys[event.shipment_id] = journey
            self._index(event.shipment_id, at // HOUR_MS)
        else:
            if journey.departed is not None or journey.planned_arrival is not None:
                self._leave_counts(journey)
            hour = journey.newest // HOUR_MS
            if at > journey.newest:
                journey.newest = at
                if (moved := at // HOUR_MS) != hour:
                    self._unindex(journey.shipment_id, hour)
                    self._index(journey.shipment_id, moved)
            journey.last_milestone, journey.last_location, journey.last_event_time = milestone, place, at
        self._changed.add(journey.shipment_id)
        if milestone in (CANCELLED, DELIVERED):
            self._remove(journey)
            return
        if milestone in _AT_ORIGIN and (planned := event.planned_arrival) is not None:
            journey.planned_arrival = round(planned.timestamp() * 1000)
        if milestone == DEPARTED:
            if place == journey.origin and (journey.departed is None or at < journey.departed):
                journey.departed = at
            if journey.dwell_at is not None and journey.dwell_at == place and journey.dwell_since is not None:
                if at >= journey.dwell_since:
                    observer.dwell(journey.labels, place, at - journey.dwell_since)
                journey.dwell_at = journey.dwell_since = None
            journey.leg_from, journey.leg_since = place, at
        elif milestone == ARRIVED:
            if journey.leg_from is not None and journey.leg_since is not None and place is not None:
                if place != journey.leg_from and at >= journey.leg_since:
                    observer.leg(journey.labels, journey.leg_from, place, at - journey.leg_since)
                journey.leg_from = journey.leg_since = None
            if place == journey.destination:
                if journey.departed is not None and at >= journey.departed:
                    observer.transit(journey.labels, at - journey.departed)
                self._remove(journey)
                return
            journey.dwell_at, journey.dwell_since = place, at
        if journey.departed is not None or journey.planned_arrival is not None:
            self._enter_counts(journey)

    def evict(self, clock: float, observer: Observer) -> None:
        """Drop the journeys nothing was heard of for the horizon, by the partition's clock."""
        cutoff = self._cutoff(clock)
        if cutoff <= self._oldest_hour:
            return
        self._oldest_hour = min(self._by_hour, default=cutoff)  # the bound was stale: the oldest hour left
        if cutoff <= self._oldest_hour:
            return
        stale = [hour for hour in self._by_hour if hour < cutoff]
        for hour in sorted(stale):
            for shipment_id in sorted(self._by_hour[hour]):
                journey = self.journeys[shipment_id]
                self._drop(journey)
                observer.evicted(journey.labels)

    def _cutoff(self, clock: float) -> int:
        """The first event-time hour a journey's newest event must lie in to be kept, at ``clock``."""
        return int((clock - self.horizon) // HOUR)

    def _index(self, shipment_id: str, hour: int) -> None:
        self._by_hour.setdefault(hour, set()).add(shipment_id)
        if hour < self._oldest_hour:
            self._oldest_hour = hour

    def _remove(self, journey: Journey) -> None:
        """A journey that ended (arrived, delivered, cancelled): its counts were left already."""
        del self.journeys[journey.shipment_id]
        self._unindex(journey.shipment_id, journey.newest // HOUR_MS)
        self._changed.add(journey.shipment_id)

    def _drop(self, journey: Journey) -> None:
        self._leave_counts(journey)
        self._remove(journey)

    def _unindex(self, shipment_id: str, hour: int) -> None:
        ids = self._by_hour[hour]
        ids.discard(shipment_id)
        if not ids:
            del self._by_hour[hour]

    def _deadline(self, journey: Journey) -> int | None:
        if journey.planned_arrival is None:
            return None
        return journey.planned_arrival + self._tolerance_ms.get(journey.mode, 0)

    def _enter_counts(self, journey: Journey) -> None:
        if journey.departed is not None:
            self.in_transit[journey.labels] += 1
        if (deadline := self._deadline(journey)) is not None:
            self.deadlines.setdefault(journey.labels, Counter())[deadline] += 1

    def _leave_counts(self, journey: Journey) -> None:
        if journey.departed is not None:
            left = self.in_transit[journey.labels] - 1
            if left:
                self.in_transit[journey.labels] = left
            else:
                del self.in_transit[journey.labels]
        if (deadline := self._deadline(journey)) is not None:
            deadlines = self.deadlines[journey.labels]
            deadlines[deadline] -= 1
            if not deadlines[deadline]:
                del deadlines[deadline]
                if not deadlines:
                    del self.deadlines[journey.labels]

    # What the metrics and the exception list read.

    def deadline_view(self) -> dict[Labels, list[int]]:
        """Each label set's deadlines (ms), sorted, one per shipment (for counting the overdue at any instant)."""
        return {labels: sorted(counts.elements()) for labels, counts in self.deadlines.items()}

    def overdue(self, now: float) -> Iterator[Overdue]:
        """The shipments whose planned arrival plus tolerance lies before ``now`` (epoch seconds)."""
        now_ms = now * 1000
        for journey in self.journeys.values():
            deadline = self._deadline(journey)
            if deadline is not None and deadline < now_ms and journey.planned_arrival is not None:
                yield Overdue(journey, deadline, (now_ms - journey.planned_arrival) / 1000)

    # Checkpoints.

    def plan(self) -> JourneyPlan:
        """The pieces a checkpoint writes of the book: the journeys changed since the last confirmed one.

        A plan supersedes an earlier one not confirmed: it holds those changes too, under a new
        piece number, so no piece a durable head may name is ever written again.
        """
        changed = self._changed | self._planned
        number = self._next_piece
        self._next_piece += 1
        held = sum(piece.rows for piece in self._durable)
        if self._compacting or not self._durable or held + len(changed) > 2 * len(self.journeys) + COMPACT_SLACK:
            self._compacting = True
            rows = [journey.row() for journey in self.journeys.values()]
            records = self._chunks(number, rows, [])
            piece = Piece(number, len(records), len(rows))
            pieces: tuple[Piece, ...] = (piece,)
            removed = {p.number: p.chunks for p in self._durable} | self._strays
        else:
            journeys = self.journeys
            upserts = [journeys[s].row() for s in sorted(changed) if s in journeys]
            deletes = sorted(s for s in changed if s not in journeys)
            records = self._chunks(number, upserts, deletes)
            piece = Piece(number, len(records), len(upserts) + len(deletes))
            pieces = (*self._durable, piece)
            removed = {}
        self._strays[number] = piece.chunks
        self._planned = frozenset(changed)
        self._changed = set()
        return JourneyPlan(tuple(records), pieces, tuple(sorted(removed.items())), self._planned)

    @staticmethod
    def _chunks(number: int, upserts: list[list[Any]], deletes: list[str]) -> list[tuple[int, int, bytes]]:
        records = []
        for index, start in enumerate(range(0, max(len(upserts), len(deletes), 1), ROWS_PER_CHUNK)):
            chunk = {"upserts": upserts[start:start + ROWS_PER_CHUNK], "deletes": deletes[start:start + ROWS_PER_CHUNK]}
            records.append((number, index, orjson.dumps(chunk)))
        return records

    def mark_durable(self, plan: JourneyPlan) -> None:
        """The broker confirmed ``plan``'s checkpoint: its pieces are what a restore reads now."""
        self._durable = plan.pieces
        self._compacting = False
        for number, _ in plan.removed:
            self._strays.pop(number, None)
        for piece in plan.pieces:
            self._strays.pop(piece.number, None)
        if self._planned is plan.changed:
            self._planned = frozenset()

    def written_nowhere(self) -> None:
        """The changelog holds none of the book (a new cluster): the next checkpoint writes it whole."""
        self._durable = ()
        self._strays = {}
        self._compacting = True

    @staticmethod
    def head(plan: JourneyPlan | None, next_piece: int) -> dict[str, Any]:
        """What the head record names of the book: its pieces, and the next piece number."""
        pieces = () if plan is None else plan.pieces
        return {"pieces": [[p.number, p.chunks, p.rows] for p in pieces], "next_piece": next_piece}

    @property
    def next_piece(self) -> int:
        return self._next_piece

    @staticmethod
    def pieces_of(head: Mapping[str, Any]) -> tuple[tuple[Piece, ...], int]:
        """The pieces a head's journey entry names, and its next piece number."""
        return tuple(Piece(*entry) for entry in head["pieces"]), int(head["next_piece"])

    @classmethod
    def restore(cls, horizon: float, tolerance: Mapping[str, float], head: Mapping[str, Any],
                read: Callable[[int, int], bytes]) -> JourneyBook:
        """The book a head names: its pieces read in order (``read(number, chunk)``)."""
        pieces, next_piece = cls.pieces_of(head)
        book = cls(horizon, tolerance)
        journeys = book.journeys
        for piece in pieces:
            for index in range(piece.chunks):
                chunk = orjson.loads(read(piece.number, index))
                for row in chunk["upserts"]:
                    journey = Journey.from_row(row)
                    journeys[journey.shipment_id] = journey
                for shipment_id in chunk["deletes"]:
                    journeys.pop(shipment_id, None)
        for journey in journeys.values():
            book._index(journey.shipment_id, journey.newest // HOUR_MS)
            book._enter_counts(journey)
        book._durable = tuple(pieces)
        book._next_piece = next_piece
        return book


def overdue_count(deadlines: Mapping[Labels, Sequence[int]], now: float) -> dict[Labels, int]:
    """How many of each label set's sorted deadlines (ms) lie before ``now`` (epoch seconds)."""
    now_ms = now * 1000
    return {labels: bisect.bisect_left(sorted_deadlines, now_ms) for labels, sorted_deadlines in deadlines.items()}


def _iso(millis: int | None) -> str | None:
    if millis is None:
        return None
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat().replace("+00:00", "Z")


def overdue_report(books: Iterable[tuple[int, JourneyBook]], now: float, limit: int) -> dict[str, Any]:
    """The exception list a worker serves: its overdue shipments, latest first, at most ``limit`` of them.

    Each entry names the shipment, its route, its last milestone and where it happened, its
    planned arrival and how late it is (seconds past the planned arrival, at ``now``).
    """
    found = [(partition, item) for partition, book in books for item in book.overdue(now)]
    found.sort(key=lambda entry: (-entry[1].late_seconds, entry[1].journey.shipment_id))
    shipments = []
    for partition, item in found[:limit]:
        journey = item.journey
        shipments.append({
            "shipment_id": journey.shipment_id, "corridor": journey.corridor, "route": journey.route,
            "mode": journey.mode, "last_milestone": journey.last_milestone, "last_location": journey.last_location,
            "last_event_time": _iso(journey.last_event_time), "planned_arrival": _iso(journey.planned_arrival),
            "late_seconds": item.late_seconds, "partition": partition,
        })
    return {"now": now, "total": len(found), "truncated": len(found) > limit, "shipments": shipments}
