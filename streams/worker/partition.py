"""A partition this worker owns, named states and one method per move between them.

Two state machines, one per question:

- ``PartitionPhase``: what of the partition's state is durable, and whether the worker still
  owns it. Decides when a checkpoint is due and whether a confirmed one may move commits.
- ``ExportPhase``: what the metrics show of it during one period of ownership (its series),
  which goes on a while after the partition was revoked.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from dataclasses import dataclass, field
from enum import Enum

from streams.core.sequence import OffsetSequence
from streams.core.state import PartitionState, StateView

#: This process in the ``owner`` label; each period of ownership adds a number to it.
_PROCESS_TOKEN = secrets.token_hex(4)
_ownerships = itertools.count(1)
#: Between a worker's stable name (``CORRIDOR_WORKER_ID``) and the rest of its ``owner`` labels.
_NAMED = "."


def next_owner(worker_id: str | None = None) -> str:
    """A new ``owner`` label, never drawn before: prefixed with the worker's stable name when it has one."""
    owner = f"{_PROCESS_TOKEN}-{next(_ownerships)}"
    return owner if worker_id is None else f"{worker_id}{_NAMED}{owner}"


def unwritten_owner(worker_id: str | None) -> str | None:
    """A named worker's ``owner`` label for a partition that has no checkpoint, the same each time it takes one.

    Every series such a partition had showed zeros only (a series shows confirmed checkpoints only), so the
    series goes on from zero; should a checkpoint have been lost, the fall to zero reads as a reset, which
    ``increase()`` counts from zero as it would a new series.
    """
    return None if worker_id is None else f"{worker_id}{_NAMED}unwritten"


def continues(series: str | None, worker_id: str | None) -> bool:
    """Whether the worker named ``worker_id`` may show a restored state under the ``owner`` label ``series``
    its newest checkpoint was written under: one of its own (drawn by any of its processes).

    Such a series only ever showed checkpoints of this worker's, and every other series the partition had
    since the newest of them showed that checkpoint and nothing more (a series shows confirmed checkpoints
    only, and any confirmed since would be newer): resumed at that checkpoint, it rises by exactly what it
    did not yet show and no other series did.
    """
    if worker_id is None or series is None:
        return False
    name, named, _ = series.partition(_NAMED)
    return bool(named) and name == worker_id


class ExportPhase(Enum):
    """Where a partition's series stands in one period of ownership (see ``PartitionExport``)."""

    STARTING = "starting"  # the restored view, held; confirmed views wait
    STARTING_REVOKED = "starting-revoked"  # revoked while STARTING: the restored view finishes its hold
    LIVE = "live"  # each confirmed view as it comes
    ENDING = "ending"  # revoked: the final view, held; views confirmed late wait their turn
    GONE = "gone"  # revoked, and no longer shown


@dataclass(slots=True)
class PartitionExport:
    """What the metrics show of a partition during one period of ownership: its series.

    A moved partition's new series must begin where the previous owner's ended, and end where
    the next owner's begins, each end sampled by every scraper; else ``increase()`` misses
    what moved with it. So the restored view is shown for ``hold_s`` (two scrape intervals)
    from when the partition was taken, and the final view (its last confirmed checkpoint) for
    ``hold_s`` from when it first shows: after the restored view's hold if it was revoked
    during it.
    """

    #: The ``owner`` label: a new value each time the partition is taken.
    owner: str
    #: What the metrics show: the restored state at first, then views of confirmed checkpoints.
    shown: StateView
    #: ``shown`` is held until then (while STARTING, STARTING_REVOKED or ENDING).
    hold_until: float
    hold_s: float
    phase: ExportPhase = ExportPhase.STARTING
    #: The view of the last confirmed checkpoint, waiting for the hold on ``shown`` to end.
    waiting: StateView | None = None

    @property
    def latest(self) -> StateView:
        """The view of the last confirmed checkpoint (the restored state if none was confirmed)."""
        return self.waiting if self.waiting is not None else self.shown

    def confirmed(self, view: StateView) -> None:
        """A checkpoint was confirmed: shown at once while LIVE, else once the hold on ``shown`` ends."""
        if self.phase is ExportPhase.LIVE:
            self.shown = view
        else:
            self.waiting = view

    def revoked(self, now: float) -> None:
        """LIVE -> ENDING, the final view held from now; STARTING -> STARTING_REVOKED."""
        if self.phase is ExportPhase.LIVE:
            self.phase, self.hold_until = ExportPhase.ENDING, now + self.hold_s
        elif self.phase is ExportPhase.STARTING:
            self.phase = ExportPhase.STARTING_REVOKED

    def given_back(self) -> None:
        """Taken again with nothing applied elsewhere meanwhile: the series goes on where it was.

        STARTING_REVOKED -> STARTING (the restored view finishes its hold); ENDING or GONE -> LIVE.
        """
        if self.phase is ExportPhase.STARTING_REVOKED:
            self.phase = ExportPhase.STARTING
        else:
            self.phase, self.shown, self.waiting = ExportPhase.LIVE, self.latest, None

    def advance(self, now: float, *, checkpointing: bool) -> None:
        """Once the hold on ``shown`` is over: STARTING -> LIVE, showing the latest confirmed view;
        STARTING_REVOKED or ENDING -> ENDING, showing a view confirmed meanwhile, held in its turn;
        with none to show and no checkpoint in flight (it may change the final view) -> GONE."""
        if now < self.hold_until or self.phase in (ExportPhase.LIVE, ExportPhase.GONE):
            return
        if self.phase is ExportPhase.STARTING:
            self.phase, self.shown, self.waiting = ExportPhase.LIVE, self.latest, None
        elif self.waiting is not None:
            self.phase, self.shown, self.waiting = ExportPhase.ENDING, self.waiting, None
            self.hold_until = now + self.hold_s
        elif not checkpointing:
            self.phase = ExportPhase.GONE


class PartitionPhase(Enum):
    """What of an owned partition's state is durable; and, once revoked, who carries its series on."""

    CLEAN = "clean"  # every applied record is in a confirmed checkpoint (or none was applied)
    DUE = "due"  # records applied that no checkpoint holds: the next checkpoint takes them
    WRITING = "writing"  # a checkpoint in flight holds every applied record
    WRITING_DUE = "writing-due"  # a checkpoint in flight, and records applied since that it lacks
    REVOKED = "revoked"  # given up: applies nothing, commits nothing; its series end with what is durable
    HANDED_ON = "handed-on"  # revoked and taken again unchanged: a new ownership carries its series on


#: The phases of a partition the worker owns.
OWNED = frozenset({PartitionPhase.CLEAN, PartitionPhase.DUE, PartitionPhase.WRITING, PartitionPhase.WRITING_DUE})


class PhaseError(RuntimeError):
    """A transition asked of a partition in a phase that has none such."""


@dataclass(slots=True)
class OwnedPartition:
    """A source partition this worker owns (or owned): its state and what of it is durable."""

    state: PartitionState
    #: What the metrics show of it; still shown a while once revoked.
    export: PartitionExport
    #: When the last checkpoint started (monotonic): the next is due an interval later.
    last_checkpoint: float
    #: Dedup chunks per bucket that may be in the changelog (for the tombstones of expired buckets).
    chunk_counts: dict[int, int] = field(default_factory=dict)
    sequence: OffsetSequence = field(default_factory=OffsetSequence)
    phase: PartitionPhase = PartitionPhase.CLEAN
    #: Records applied (or skipped as held) that no checkpoint holds, and when the oldest was applied.
    due: int = 0
    due_since: float | None = None
    #: The checkpoint in flight (its result: whether it was confirmed), and when its oldest record was applied.
    writing: asyncio.Future[bool] | None = None
    writing_since: float | None = None
    #: Kafka timestamp (Unix seconds) of the last record applied in this ownership, and when (Unix seconds)
    #: the worker last saw no record after the last applied one: the next record came later than both.
    last_record_time: float | None = None
    caught_up_at: float | None = None

    @property
    def owned(self) -> bool:
        return self.phase in OWNED

    def age(self, now: float) -> float:
        """How long the oldest record no confirmed checkpoint holds has waited (0 with none)."""
        waiting = [since for since in (self.due_since, self.writing_since) if since is not None]
        return now - min(waiting) if waiting else 0.0

    def lag_seconds(self, lag: int, now: float) -> float | None:
        """How long the oldest record not yet applied has waited at most, at ``now`` (Unix seconds), with
        ``lag`` records waiting: 0 without lag, None while neither bound is known.

        That record was appended after the last applied record (Kafka timestamps grow along a
        partition: the broker's append time, or producers' clocks) and after the worker last saw
        none waiting; so it is at most as old as the later of the two. Behind a backlog, where the
        next record follows the last applied one closely, the bound is its age.
        """
        if lag <= 0:
            return 0.0
        since = [moment for moment in (self.last_record_time, self.caught_up_at) if moment is not None]
        return max(now - max(since), 0.0) if since else None

    def seen_caught_up(self, now: float) -> None:
        """No record waits after the last applied one at ``now`` (Unix seconds)."""
        self.caught_up_at = now

    def applied(self, records: int, now: float) -> None:
        """Records applied: CLEAN -> DUE, WRITING -> WRITING_DUE."""
        self._require(OWNED)
        if self.phase is PartitionPhase.CLEAN:
            self.phase, self.due_since = PartitionPhase.DUE, now
        elif self.phase is PartitionPhase.WRITING:
            self.phase, self.due_since = PartitionPhase.WRITING_DUE, now
        self.due += records

    def rebased(self, now: float) -> None:
        """Rebased on a new cluster, whose changelog holds none of it: due though nothing was applied.

        CLEAN -> DUE, WRITING -> WRITING_DUE.
        """
        if self.phase is PartitionPhase.CLEAN:
            self.phase, self.due_since = PartitionPhase.DUE, now
        elif self.phase is PartitionPhase.WRITING:
            self.phase, self.due_since = PartitionPhase.WRITING_DUE, now

    def started(self, writing: asyncio.Future[bool], now: float) -> int:
        """A checkpoint of everything applied is in flight: DUE -> WRITING. Returns the records it takes."""
        self._require({PartitionPhase.DUE})
        records, self.due = self.due, 0
        self.writing, self.writing_since, self.due_since = writing, self.due_since, None
        self.phase, self.last_checkpoint = PartitionPhase.WRITING, now
        return records

    def confirmed(self) -> None:
        """The checkpoint in flight ended (confirmed, or moot once revoked): WRITING -> CLEAN,
        WRITING_DUE -> DUE; a revoked partition stays as it is."""
        self.writing = self.writing_since = None
        if self.phase is PartitionPhase.WRITING:
            self.phase = PartitionPhase.CLEAN
        elif self.phase is PartitionPhase.WRITING_DUE:
            self.phase = PartitionPhase.DUE

    def refused(self, records: int) -> None:
        """The broker refused the checkpoint in flight: its records are due again, as old as they were.

        WRITING or WRITING_DUE -> DUE; a revoked partition stays as it is.
        """
        if self.owned:
            self.phase = PartitionPhase.DUE
        self.due += records
        self.due_since, self.writing_since, self.writing = self.writing_since, None, None

    def outdated(self, records: int) -> None:
        """The checkpoint in flight counted offsets of a cluster that is gone: it moves nothing, and
        the rebased state is due instead. WRITING or WRITING_DUE -> DUE."""
        self.writing = self.writing_since = None
        if self.owned:
            self.phase = PartitionPhase.DUE
        self.due += records

    def abandoned(self) -> None:
        """Its due records are given up after failed writes: DUE -> CLEAN. They are not committed, and
        are read again from the committed offset by the partition's next owner."""
        self._require({PartitionPhase.DUE})
        self.phase, self.due = PartitionPhase.CLEAN, 0

    def revoked(self, now: float) -> None:
        """The group took it away: any owned phase -> REVOKED (a checkpoint in flight runs on)."""
        self._require(OWNED)
        self.phase = PartitionPhase.REVOKED
        self.export.revoked(now)

    def handed_on(self) -> None:
        """Taken again with nothing applied elsewhere meanwhile: REVOKED -> HANDED_ON, its series
        going on in the new ownership."""
        self._require({PartitionPhase.REVOKED})
        self.phase = PartitionPhase.HANDED_ON
        self.export.given_back()

    def _require(self, phases: frozenset[PartitionPhase] | set[PartitionPhase]) -> None:
        if self.phase not in phases:
            raise PhaseError(f"partition in phase {self.phase.value}, expected one of "
                             f"{sorted(p.value for p in phases)}")
