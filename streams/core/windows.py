"""Event-time rolling window sums, bucketed so memory grows with series, not events.

Semantics (docs/semantics.md): a window of ``w`` seconds with buckets ``g`` seconds wide,
read at ``now``, sums the values of events whose bucket start lies in
``(b_now - w, b_now]`` with ``b_now = floor(now / g) * g``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streams.core.series import Labels

STATE_FORMAT = 1

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_LABEL = re.compile(r"([1-9][0-9]*)([smhd])")

#: Bucket widths a window may use, coarsest first: 1d, 6h, 1h, 15m, 5m, 1m, 30s, 10s, 5s, 1s.
BUCKET_LADDER: tuple[int, ...] = (86400, 21600, 3600, 900, 300, 60, 30, 10, 5, 1)
#: A window gets the coarsest ladder width that divides it into at least this many buckets,
#: so the partial current bucket moves a window's edge by at most 1/30 of its length.
MIN_BUCKETS = 30


def parse_window(label: str) -> int:
    """Seconds in a window label such as ``5m``, ``1h``, ``24h``, ``7d`` or ``90s``."""
    match = _LABEL.fullmatch(label)
    if match is None:
        raise ValueError(f"window {label!r}: expected a positive integer followed by s, m, h or d, e.g. 5m")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def bucket_width(window_seconds: int) -> int:
    """The bucket width (seconds) of a window: 5m -> 10s, 1h -> 1m, 24h -> 15m, 7d -> 1h."""
    for width in BUCKET_LADDER:
        if window_seconds % width == 0 and window_seconds // width >= MIN_BUCKETS:
            return width
    return 1


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """One rolling window: its label, its length and its bucket width, in seconds."""

    label: str
    seconds: int
    bucket_seconds: int

    @property
    def buckets(self) -> int:
        """Buckets the window spans, the current partial one included."""
        return self.seconds // self.bucket_seconds


def base_width(specs: Sequence[WindowSpec]) -> int:
    """The widest bucket width every window's bucket width is a multiple of (seconds)."""
    return math.gcd(*(spec.bucket_seconds for spec in specs))


def window_specs(labels: Sequence[str]) -> tuple[WindowSpec, ...]:
    """Specs for window labels, in the order given."""
    if len(set(labels)) != len(labels):
        raise ValueError(f"windows {list(labels)}: a label appears twice")
    specs = []
    for label in labels:
        seconds = parse_window(label)
        specs.append(WindowSpec(label, seconds, bucket_width(seconds)))
    return tuple(specs)


@dataclass(slots=True)
class _Level:
    """Bucket bookkeeping shared by the windows of one bucket width."""

    width: int
    ratio: int  # width / base width
    reach: int  # buckets of the longest window on this level
    windows: tuple[tuple[str, int], ...]  # (label, buckets), shortest first
    floor: float = -math.inf  # lowest bucket index any window can still reach


class RollingWindows:
    """Bucketed event-time sums per series (a series is any hashable key tuple) for a set of windows.

    Values are integers (fixed-point units), so sums are exact and independent of the
    order and batching of events. ``now`` passed to ``values`` and ``expire`` is expected
    not to go backwards; reading at an earlier ``now`` than an ``expire`` may miss buckets.
    """

    def __init__(self, specs: Sequence[WindowSpec]) -> None:
        if not specs:
            raise ValueError("at least one window is needed")
        self.specs = tuple(specs)
        widths = sorted({spec.bucket_seconds for spec in self.specs})
        self._base = base_width(self.specs)
        self._levels: list[_Level] = []
        for width in widths:
            on_level = sorted((s.buckets, s.label) for s in self.specs if s.bucket_seconds == width)
            self._levels.append(
                _Level(
                    width=width,
                    ratio=width // self._base,
                    reach=on_level[-1][0],
                    windows=tuple((label, buckets) for buckets, label in on_level),
                )
            )
        self._level_index = {level.width: i for i, level in enumerate(self._levels)}
        # series -> one {bucket index: sum} per level; a series stays (at zero) once seen.
        self._series: dict[Labels, list[dict[int, int]]] = {}

    def add(self, series: Labels, event_time: float, value: int) -> None:
        """Add one event's value to its buckets."""
        self.add_many(((series, event_time, value),))

    @property
    def base(self) -> int:
        """The base bucket width (seconds): every bucket width is a multiple of it."""
        return self._base

    def add_many(self, series_and_times_and_values: Iterable[tuple[Labels, float, int]]) -> None:
        """Add a batch: it is summed per (series, finest bucket) before any bucket is touched."""
        base = self._base
        summed: dict[tuple[Labels, float], int] = {}
        get = summed.get
        for series, event_time, value in series_and_times_and_values:
            key = (series, event_time // base)
            summed[key] = get(key, 0) + value
        self.add_summed(summed)

    def add_summed(self, sums: Mapping[tuple[Labels, float], int]) -> None:
        """Add values already summed per (series, base bucket index ``event_time // base``)."""
        # Converted before any bucket changes: a non-finite time fails the whole batch.
        by_series: dict[Labels, list[tuple[int, int]]] = {}
        for (series, base_index), value in sums.items():
            rows = by_series.get(series)
            if rows is None:
                rows = by_series[series] = []
            rows.append((int(base_index), value))
        levels = [(level.ratio, level.floor) for level in self._levels]
        all_series = self._series
        for series, rows in by_series.items():
            per_level = all_series.get(series)
            if per_level is None:
                per_level = all_series[series] = [{} for _ in levels]
            for buckets, (ratio, floor) in zip(per_level, levels, strict=True):
                get = buckets.get
                for base_index, value in rows:
                    index = base_index // ratio
                    if index >= floor:
                        buckets[index] = get(index, 0) + value

    def values(self, now: float) -> dict[Labels, dict[str, int]]:
        """Series -> {window label: sum} at ``now``; every series ever seen is present."""
        labels = [spec.label for spec in self.specs]
        plan = [(int(now // level.width), level.windows) for level in self._levels]
        result: dict[Labels, dict[str, int]] = {}
        for series, per_level in self._series.items():
            sums = dict.fromkeys(labels, 0)
            for buckets, (current, windows) in zip(per_level, plan, strict=True):
                for index, value in buckets.items():
                    age = current - index
                    if age < 0:
                        continue
                    for label, span in windows:
                        if age < span:
                            sums[label] += value
            result[series] = sums
        return result

    def expire(self, now: float) -> None:
        """Drop buckets that no window can reach at ``now`` or later."""
        for k, level in enumerate(self._levels):
            floor = int(now // level.width) - level.reach + 1
            if floor <= level.floor:
                continue
            level.floor = floor
            for per_level in self._series.values():
                buckets = per_level[k]
                stale = [index for index in buckets if index < floor]
                for index in stale:
                    del buckets[index]

    def copy(self) -> RollingWindows:
        """An independent copy: later adds and expiries of either leave the other alone."""
        twin = RollingWindows(self.specs)
        for mine, theirs in zip(twin._levels, self._levels, strict=True):
            mine.floor = theirs.floor
        twin._series = {series: [dict(buckets) for buckets in per_level] for series, per_level in self._series.items()}
        return twin

    def to_state(self) -> dict[str, Any]:
        """A JSON-able snapshot: per series and bucket width, delta-encoded (index, sum) pairs."""
        rows = []
        for series, per_level in self._series.items():
            by_width = {}
            for level, buckets in zip(self._levels, per_level, strict=True):
                flat: list[int] = []
                previous = 0
                for index in sorted(buckets):
                    flat += (index - previous, buckets[index])
                    previous = index
                by_width[str(level.width)] = flat
            rows.append([list(series) if isinstance(series, tuple) else series, by_width])
        return {"format": STATE_FORMAT, "series": rows}

    @classmethod
    def from_state(cls, specs: Sequence[WindowSpec], state: dict[str, Any]) -> RollingWindows:
        """Rebuild from ``to_state``; buckets of widths the specs no longer use are dropped."""
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"unknown rolling-window state format {state.get('format')!r}")
        windows = cls(specs)
        for series, by_width in state["series"]:
            key = tuple(series) if isinstance(series, list) else series
            per_level = windows._series[key] = [{} for _ in windows._levels]
            for width, flat in by_width.items():
                k = windows._level_index.get(int(width))
                if k is None:
                    continue
                buckets = per_level[k]
                index = 0
                for i in range(0, len(flat), 2):
                    index += flat[i]
                    buckets[index] = flat[i + 1]
        return windows
