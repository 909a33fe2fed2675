"""Event-id deduplication within a horizon, at 28 to 30 bytes per remembered event.

Each admitted event is remembered as the 16-byte BLAKE2b hash of its ``event_id`` (two
uint64 halves), the event-time bucket it was filed under (int64) and its place in that
bucket (uint32). Entries live in a few immutable runs sorted by the hash's first half, a
small log-structured merge tree: new entries wait in a bounded pending buffer (a dict, so
single-event records stay cheap), a full buffer or a large batch becomes a new run, and a
run is merged into the older one before it reaches 1/FANOUT of its size. An insert costs
O(log n) amortised copies and a lookup one binary search per run. Expiry and persistence
work on whole event-time buckets.

Persistence is incremental: each bucket recently written also keeps its *tail*, the hashes
from the start of its last durable, partly filled chunk on, appended to as events are
admitted. A checkpoint of such a bucket copies its tail, so it costs what changed since the
last one, never a search through the index; a bucket without a tail (idle for a checkpoint,
or past the tails' memory budget of TAIL_BUDGET_PER_ENTRY bytes per entry) is read back from
the runs once, then kept.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

HASH_BYTES = 16
#: A newer run is merged into the older one before it reaches 1/FANOUT of its size.
FANOUT = 8
#: Batches up to this size are admitted one event at a time through the pending buffer.
SMALL_BATCH = 8
#: The pending buffer becomes a run when it holds this many entries.
PENDING_LIMIT = 256
_MAX_BUCKET_ENTRIES = 2**32
#: Tails may take this many bytes per remembered entry, or TAIL_BUDGET_MIN_BYTES if more; past that the
#: oldest buckets' tails are dropped (and read back from the runs once when a checkpoint needs them).
TAIL_BUDGET_PER_ENTRY = 2
TAIL_BUDGET_MIN_BYTES = 256 * 1024
#: Event times must lie in datetime's range, years 1 to 9999 (epoch seconds).
EARLIEST_TIME, LATEST_TIME = -62135596800.0, 253402300800.0


def event_hashes(event_ids: Sequence[str]) -> np.ndarray:
    """16-byte BLAKE2b digests of the UTF-8 event ids, as rows of two native uint64 halves."""
    blake2b = hashlib.blake2b  # inlined rather than _digest: this loop is the hot path
    digests = b"".join([blake2b(event_id.encode(), digest_size=HASH_BYTES).digest() for event_id in event_ids])
    return np.frombuffer(digests, dtype=np.uint64).reshape(-1, 2)


def _digest(event_id: str) -> bytes:
    return hashlib.blake2b(event_id.encode(), digest_size=HASH_BYTES).digest()


@dataclass(frozen=True, slots=True)
class _Run:
    """Entries sorted by ``hi``: hash halves, event-time bucket and place in that bucket."""

    hi: np.ndarray  # uint64, sorted; distinct hashes sharing it (rare) sit side by side
    lo: np.ndarray  # uint64
    buckets: np.ndarray  # int64 bucket id = floor(event_time / bucket_seconds)
    positions: np.ndarray  # uint32 admission order within the bucket

    def __len__(self) -> int:
        return len(self.hi)

    def contains(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """For each hash (hi[i], lo[i]): is it in this run?"""
        size = len(self.hi)
        at = np.searchsorted(self.hi, hi)
        near = np.minimum(at, size - 1)
        same_hi = (self.hi[near] == hi) & (at < size)
        found: np.ndarray = same_hi & (self.lo[near] == lo)
        unsure = same_hi & ~found
        if unsure.any():
            for i in np.flatnonzero(unsure).tolist():
                found[i] = self._scan(int(at[i]) + 1, hi[i], lo[i])
        return found

    def has(self, hi: np.uint64, lo: np.uint64) -> bool:
        """Is the hash (hi, lo) in this run?"""
        return self._scan(int(self.hi.searchsorted(hi)), hi, lo)

    def _scan(self, start: int, hi: np.uint64, lo: np.uint64) -> bool:
        for i in range(start, len(self.hi)):
            if self.hi[i] != hi:
                return False
            if self.lo[i] == lo:
                return True
        return False

    def merged(self, newer: _Run) -> _Run:
        at = np.searchsorted(self.hi, newer.hi)
        return _Run(
            np.insert(self.hi, at, newer.hi),
            np.insert(self.lo, at, newer.lo),
            np.insert(self.buckets, at, newer.buckets),
            np.insert(self.positions, at, newer.positions),
        )

    def select(self, keep: np.ndarray) -> _Run:
        return _Run(self.hi[keep], self.lo[keep], self.buckets[keep], self.positions[keep])

    @property
    def nbytes(self) -> int:
        return self.hi.nbytes + self.lo.nbytes + self.buckets.nbytes + self.positions.nbytes


@dataclass(frozen=True, slots=True)
class Admission:
    """What ``DedupIndex.lookup`` found: which events are first sightings, and how to remember them."""

    #: True for each first sighting, False for a duplicate (also of an earlier event of the batch).
    first: list[bool]
    version: int  # of the index when it was looked up
    file: Callable[[], None]  # files the first sightings in their buckets


@dataclass(slots=True)
class _Tail:
    """A bucket's hashes from place ``start`` to its end, in admission order."""

    start: int
    hashes: bytearray


class DedupIndex:
    """Remembers event ids for ``horizon_seconds`` of event time, in buckets of ``bucket_seconds``."""

    def __init__(self, horizon_seconds: float, bucket_seconds: int = 3600) -> None:
        if not horizon_seconds > 0:
            raise ValueError(f"dedup horizon must be > 0 seconds, got {horizon_seconds!r}")
        if not (isinstance(bucket_seconds, int) and bucket_seconds >= 1):
            raise ValueError(f"dedup bucket width must be a whole number of seconds >= 1, got {bucket_seconds!r}")
        self.horizon_seconds = float(horizon_seconds)
        self.bucket_seconds = bucket_seconds
        self._runs: list[_Run] = []
        self._pending: dict[bytes, tuple[int, int]] = {}  # digest -> (bucket, place), in arrival order
        self._sizes: dict[int, int] = {}
        self._durable_sizes: dict[int, int] = {}
        self._version = 0  # counts changes to what is remembered: a lookup is valid until the next
        self._tails: dict[int, _Tail] = {}
        #: Buckets expired since the last ``changed_chunks``: sizes planned before hold nothing of them now.
        self._expired: set[int] = set()
        self._tail_bytes = 0
        self._tail_budget = TAIL_BUDGET_MIN_BYTES
        self._chunk_entries = 0  # of the last changed_chunks: tails are trimmed to its chunk boundaries

    def __len__(self) -> int:
        return sum(self._sizes.values())

    def nbytes(self) -> int:
        """Bytes held by the runs' arrays, the pending buffer and the tails."""
        pending = sys.getsizeof(self._pending) + sum(
            sys.getsizeof(digest) + sys.getsizeof(entry) + sys.getsizeof(entry[0]) + sys.getsizeof(entry[1])
            for digest, entry in self._pending.items()
        )
        tails = sum(sys.getsizeof(tail.hashes) for tail in self._tails.values())
        return pending + tails + sum(run.nbytes for run in self._runs)

    def admit(self, event_ids: Sequence[str], event_times: Sequence[float]) -> np.ndarray:
        """True for each first sighting (now remembered), False for a duplicate, also within the batch."""
        admission = self.lookup(event_ids, event_times)
        self.remember(admission)
        return np.array(admission.first, dtype=bool)

    def lookup(self, event_ids: Sequence[str], event_times: Sequence[float]) -> Admission:
        """The first sightings among the events, not remembered yet: pass the result to ``remember``.

        Nothing the index remembers changes in between, so a caller can measure the first
        sightings and remember them only once that succeeded.
        """
        if len(event_ids) != len(event_times):
            raise ValueError(f"{len(event_ids)} event ids but {len(event_times)} event times")
        if len(event_ids) <= SMALL_BATCH:
            return self._lookup_few(event_ids, event_times)
        self._flush()
        return self._lookup_many(event_ids, event_times)

    def remember(self, admission: Admission) -> None:
        """Remember the first sightings ``lookup`` found; the index must not have changed since."""
        if admission.version != self._version:
            raise RuntimeError("the dedup index changed between lookup and remember")
        self._version += 1
        admission.file()
        if self._tail_bytes > self._tail_budget:
            self._trim_tails()

    def _lookup_few(self, event_ids: Sequence[str], event_times: Sequence[float]) -> Admission:
        if not all(EARLIEST_TIME <= t < LATEST_TIME for t in event_times):
            raise ValueError("event times must be epoch seconds within years 1 to 9999")
        first: list[bool] = []
        digests: list[bytes] = []
        times: list[float] = []
        pending, runs = self._pending, self._runs
        for event_id, event_time in zip(event_ids, event_times, strict=True):
            digest = _digest(event_id)
            new = digest not in pending and digest not in digests
            if new and runs:
                # numpy scalars: a plain int below 2**63 would make searchsorted copy the run as float64
                hi = np.uint64(int.from_bytes(digest[:8], sys.byteorder))
                lo = np.uint64(int.from_bytes(digest[8:], sys.byteorder))
                new = not any(run.has(hi, lo) for run in runs)
            first.append(new)
            if new:
                digests.append(digest)
                times.append(event_time)
        return Admission(first, self._version, lambda: self._remember_few(digests, times))

    def _remember_few(self, digests: list[bytes], event_times: Sequence[float]) -> None:
        pending, sizes, tails, width = self._pending, self._sizes, self._tails, self.bucket_seconds
        buckets = [int(event_time // width) for event_time in event_times]
        if any(sizes.get(bucket, 0) + len(buckets) > _MAX_BUCKET_ENTRIES for bucket in buckets):
            raise OverflowError("a dedup bucket is limited to 2**32 entries: use narrower buckets")
        for digest, bucket in zip(digests, buckets, strict=True):
            place = sizes.get(bucket, 0)
            sizes[bucket] = place + 1
            pending[digest] = (bucket, place)
            tail = tails.get(bucket)
            if tail is not None:
                tail.hashes += digest
                self._tail_bytes += HASH_BYTES
            elif place == 0:
                tails[bucket] = _Tail(0, bytearray(digest))
                self._tail_bytes += HASH_BYTES
        if len(pending) >= PENDING_LIMIT:
            self._flush()

    def _lookup_many(self, event_ids: Sequence[str], event_times: Sequence[float]) -> Admission:
        hashes = event_hashes(event_ids)
        times = np.asarray(event_times, dtype=np.float64)
        if not ((times >= EARLIEST_TIME) & (times < LATEST_TIME)).all():
            raise ValueError("event times must be epoch seconds within years 1 to 9999")
        first = np.zeros(len(hashes), dtype=bool)
        # lexsort is stable, so the first of equal hashes is the first to arrive.
        order = np.lexsort((hashes[:, 1], hashes[:, 0]))
        hi, lo = hashes[order, 0], hashes[order, 1]
        fresh = np.ones(len(order), dtype=bool)
        fresh[1:] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])
        for run in self._runs:
            fresh &= ~run.contains(hi, lo)
        if not fresh.any():
            return Admission(first.tolist(), self._version, lambda: None)
        arrivals = order[fresh]
        first[arrivals] = True
        run_hi, run_lo, new_hashes, new_times = hi[fresh], lo[fresh], hashes[arrivals], times[arrivals]

        def file() -> None:
            buckets = np.floor_divide(new_times, self.bucket_seconds).astype(np.int64)
            places = self._file(buckets, arrivals, new_hashes)
            self._runs.append(_Run(run_hi, run_lo, buckets, places))
            self._settle()

        return Admission(first.tolist(), self._version, file)

    def _file(self, buckets: np.ndarray, arrivals: np.ndarray, hashes: np.ndarray) -> np.ndarray:
        """Give new entries (``hashes``, one row each) the next places in their buckets, in order of arrival."""
        order = np.lexsort((arrivals, buckets))
        ids, starts, counts = np.unique(buckets[order], return_index=True, return_counts=True)
        ids_list = ids.tolist()
        before_list = [self._sizes.get(b, 0) for b in ids_list]
        before = np.array(before_list, dtype=np.int64)
        after = (before + counts).tolist()
        if max(after) > _MAX_BUCKET_ENTRIES:
            raise OverflowError("a dedup bucket is limited to 2**32 entries: use narrower buckets")
        places = np.empty(len(order), dtype=np.uint32)
        places[order] = np.arange(len(order)) + np.repeat(before - starts, counts)
        in_place_order = hashes[order]
        tails = self._tails
        for bucket, size, first, start, end in zip(
            ids_list, after, before_list, starts.tolist(), (starts + counts).tolist(), strict=True
        ):
            self._sizes[bucket] = size
            tail = tails.get(bucket)
            if tail is not None:
                tail.hashes += in_place_order[start:end].tobytes()
            elif first == 0:
                tails[bucket] = _Tail(0, bytearray(in_place_order[start:end].tobytes()))
            else:
                continue
            self._tail_bytes += (end - start) * HASH_BYTES
        if self._tail_bytes > self._tail_budget:
            self._trim_tails()
        return places

    def _trim_tails(self, *, keep: Mapping[int, _Tail] | None = None) -> None:
        """Keep the newest buckets' tails (of ``keep``, default all) within the budget."""
        self._tail_budget = max(TAIL_BUDGET_MIN_BYTES, TAIL_BUDGET_PER_ENTRY * len(self))
        candidates = self._tails if keep is None else keep
        kept: dict[int, _Tail] = {}
        held = 0
        for bucket in sorted(candidates, reverse=True):
            tail = candidates[bucket]
            if held + len(tail.hashes) > self._tail_budget:
                break
            held += len(tail.hashes)
            kept[bucket] = tail
        self._tails, self._tail_bytes = kept, held

    def _flush(self) -> None:
        """Turn the pending buffer into a run."""
        if not self._pending:
            return
        hashes = np.frombuffer(b"".join(self._pending), dtype=np.uint64).reshape(-1, 2)
        entries = np.array(list(self._pending.values()), dtype=np.int64)
        order = np.argsort(hashes[:, 0], kind="stable")
        self._runs.append(
            _Run(hashes[order, 0], hashes[order, 1], entries[order, 0], entries[order, 1].astype(np.uint32))
        )
        self._pending = {}
        self._settle()

    def _settle(self) -> None:
        """Merge adjacent runs until each is at least FANOUT times the size of the next."""
        runs = self._runs
        for i in range(len(runs) - 1, 0, -1):
            if len(runs[i]) * FANOUT > len(runs[i - 1]):
                runs[i - 1 : i + 1] = [runs[i - 1].merged(runs[i])]

    def expire(self, watermark: float) -> int:
        """Forget buckets whose events are all older than ``watermark - horizon``; returns entries dropped."""
        first_kept = int((watermark - self.horizon_seconds) // self.bucket_seconds)
        stale = [bucket for bucket in self._sizes if bucket < first_kept]
        if not stale:
            return 0
        self._version += 1
        self._flush()
        dropped = 0
        for bucket in stale:
            dropped += self._sizes.pop(bucket)
            self._durable_sizes.pop(bucket, None)
            self._expired.add(bucket)
            tail = self._tails.pop(bucket, None)
            if tail is not None:
                self._tail_bytes -= len(tail.hashes)
        runs = []
        for run in self._runs:
            keep = run.buckets >= first_kept
            if keep.all():
                runs.append(run)
            elif keep.any():
                runs.append(run.select(keep))
        self._runs = runs
        self._settle()
        return dropped

    def bucket_sizes(self) -> dict[int, int]:
        """Bucket id -> entries it holds (bucket id = floor(event_time / bucket_seconds))."""
        return dict(self._sizes)

    def changed_chunks(self, chunk_entries: int) -> list[tuple[int, int, bytes]]:
        """``(bucket, chunk index, hashes)`` of every chunk holding entries admitted since ``mark_durable``.

        A bucket is stored as chunks of ``chunk_entries`` hashes in admission order (chunk i
        holds places ``i * chunk_entries`` onwards), so a changed bucket costs its partly
        filled last durable chunk plus the new ones, never the whole bucket; with its tail
        at hand, it costs no search through the index either.
        """
        self._chunk_entries = chunk_entries
        self._expired.clear()
        changed = []
        step = chunk_entries * HASH_BYTES
        for bucket, size in sorted(self._sizes.items()):
            durable = self._durable_sizes.get(bucket, 0)
            if size == durable:
                continue
            first = durable // chunk_entries
            start = first * chunk_entries
            tail = self._tails.get(bucket)
            if tail is None or tail.start > start:
                if tail is not None:
                    self._tail_bytes -= len(tail.hashes)
                tail = self._tails[bucket] = _Tail(start, bytearray(self.hashes(bucket, start)))
                self._tail_bytes += len(tail.hashes)
            hashes = bytes(tail.hashes[(start - tail.start) * HASH_BYTES :])
            for index, offset in enumerate(range(0, len(hashes), step), start=first):
                changed.append((bucket, index, hashes[offset : offset + step]))
        return changed

    def hashes(self, bucket: int, start: int = 0) -> bytes:
        """The bucket's hashes from place ``start`` on, in admission order."""
        self._flush()
        out = np.empty((self._sizes[bucket] - start, 2), dtype=np.uint64)
        for run in self._runs:
            mask = run.buckets == bucket
            if start:
                mask &= run.positions >= start
            places = run.positions[mask] - start
            out[places, 0] = run.hi[mask]
            out[places, 1] = run.lo[mask]
        return out.tobytes()

    def mark_durable(self, sizes: Mapping[int, int]) -> None:
        """Record that a confirmed checkpoint holds the first ``sizes[id]`` entries of each bucket.

        Tails are cut back to the start of their partly filled durable chunk; the tail of a
        bucket this checkpoint did not write, and that took no entries since, is dropped (an
        idle bucket keeps no copy of its hashes), and so are the oldest buckets' tails past the
        budget (:data:`TAIL_BUDGET_PER_ENTRY` bytes per entry).
        """
        previous = self._durable_sizes
        self._durable_sizes = {
            bucket: size for bucket, size in sizes.items() if bucket in self._sizes and bucket not in self._expired
        }
        chunk = self._chunk_entries
        active: dict[int, _Tail] = {}
        for bucket, tail in self._tails.items():
            durable = self._durable_sizes.get(bucket, 0)
            if durable == previous.get(bucket, 0) and durable == self._sizes.get(bucket, 0):
                continue  # idle
            if chunk:
                start = durable // chunk * chunk
                if start > tail.start:
                    del tail.hashes[: (start - tail.start) * HASH_BYTES]
                    tail.start = start
            active[bucket] = tail
        self._trim_tails(keep=active)

    @classmethod
    def restore(
        cls,
        horizon_seconds: float,
        bucket_seconds: int,
        buckets: Mapping[int, bytes],
        sizes: Mapping[int, int],
    ) -> DedupIndex:
        """Rebuild from persisted buckets, keeping the first ``sizes[id]`` entries of each listed bucket."""
        index = cls(horizon_seconds, bucket_seconds)
        hashes, ids, places = [], [], []
        for bucket, size in sizes.items():
            bucket, size = int(bucket), int(size)
            if size <= 0:
                continue
            data = buckets.get(bucket, b"")
            if len(data) < size * HASH_BYTES:
                raise ValueError(
                    f"dedup bucket {bucket}: the head record counts {size} entries "
                    f"but only {len(data) // HASH_BYTES} are stored"
                )
            hashes.append(np.frombuffer(data, dtype=np.uint64, count=2 * size).reshape(-1, 2))
            ids.append(np.full(size, bucket, dtype=np.int64))
            places.append(np.arange(size, dtype=np.uint32))
            index._sizes[bucket] = size
        if hashes:
            all_hashes = np.concatenate(hashes)
            order = np.lexsort((all_hashes[:, 1], all_hashes[:, 0]))
            hi, lo = all_hashes[order, 0], all_hashes[order, 1]
            if ((hi[1:] == hi[:-1]) & (lo[1:] == lo[:-1])).any():
                raise ValueError("dedup buckets hold the same event hash twice: the checkpoint is corrupt")
            index._runs = [_Run(hi, lo, np.concatenate(ids)[order], np.concatenate(places)[order])]
        index._durable_sizes = dict(index._sizes)
        return index
