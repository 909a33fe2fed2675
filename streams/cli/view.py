"""The live view of ``corridor run``: a worker's /metrics in, a rich renderable or one summary line out.

Pure: nothing here touches the network or the clock, so the view is tested from a
fixed set of samples.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial

from prometheus_client.samples import Sample
from rich import box
from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from schemas.families import FAMILIES, FAMILY_NAMES
from streams.core.families import (
    DATACHANNEL_BYTES_WINDOW,
    FINANCE_USD_WINDOW,
    FLIGHTS_OPERATED_WINDOW,
    SHIPMENT_TEU_WINDOW,
)
from streams.core.series import EVENTS_ACCEPTED, EVENTS_DUPLICATE, EVENTS_LATE, EVENTS_RECEIVED, EVENTS_REJECTED
from streams.process import parse_metrics

#: Length in seconds of each window label the view shows.
WINDOW_SECONDS: dict[str, int] = {"5m": 300, "1h": 3600, "24h": 86_400, "7d": 604_800}
_STREAM_OF_TOPIC = {family.topic: name for name, family in FAMILIES.items()}
#: The window gauges the view shows and the labels it keeps of each.
_WINDOW_METRICS: dict[str, tuple[str, ...]] = {
    SHIPMENT_TEU_WINDOW.name: ("route",),
    FLIGHTS_OPERATED_WINDOW.name: ("route", "service"),
    FINANCE_USD_WINDOW.name: ("instrument",),
    DATACHANNEL_BYTES_WINDOW.name: ("link", "direction"),
}
#: Pipeline counters (samples carry the ``_total`` suffix) -> the StreamHealth field they fill.
_PIPELINE_COUNTERS = {
    f"{EVENTS_RECEIVED.name}_total": "received",
    f"{EVENTS_ACCEPTED.name}_total": "accepted",
    f"{EVENTS_REJECTED.name}_total": "rejected",
    f"{EVENTS_DUPLICATE.name}_total": "duplicate",
    f"{EVENTS_LATE.name}_total": "late",
}
_NO_VALUE = "–"

ByWindow = dict[str, float]
Format = Callable[[float], str]


@dataclass(frozen=True)
class StreamHealth:
    """Pipeline counts of one stream: events received, accepted, rejected, duplicate, late; records not consumed."""

    received: float = 0.0
    accepted: float = 0.0
    rejected: float = 0.0
    duplicate: float = 0.0
    late: float = 0.0
    lag: float = 0.0


@dataclass(frozen=True)
class Snapshot:
    """What the view shows: each measure by the labels it keeps (summed over the others), then by window."""

    teu: dict[tuple[str, ...], ByWindow] = field(default_factory=dict)  #: (route,) -> TEU departed
    flights: dict[tuple[str, ...], ByWindow] = field(default_factory=dict)  #: (route, service) -> flights operated
    finance: dict[tuple[str, ...], ByWindow] = field(default_factory=dict)  #: (instrument,) -> USD signed
    datachannel: dict[tuple[str, ...], ByWindow] = field(default_factory=dict)  #: (link, direction) -> bytes
    streams: dict[str, StreamHealth] = field(default_factory=dict)  #: stream -> pipeline counts

    @classmethod
    def from_samples(cls, samples: Iterable[Sample]) -> Snapshot:
        measures: dict[str, dict[tuple[str, ...], ByWindow]] = {name: {} for name in _WINDOW_METRICS}
        counts: dict[str, dict[str, float]] = {stream: defaultdict(float) for stream in FAMILY_NAMES}
        for sample in samples:
            labels = sample.labels
            kept = _WINDOW_METRICS.get(sample.name)
            if kept is not None:
                by_window = measures[sample.name].setdefault(tuple(labels[label] for label in kept), {})
                by_window[labels["window"]] = by_window.get(labels["window"], 0.0) + sample.value
            elif sample.name in _PIPELINE_COUNTERS:
                counts.setdefault(labels["stream"], defaultdict(float))[_PIPELINE_COUNTERS[sample.name]] += sample.value
            elif sample.name == "corridor_consumer_lag":
                stream = _STREAM_OF_TOPIC.get(labels["topic"])
                if stream is not None:
                    counts[stream]["lag"] += sample.value
        return cls(
            teu=measures[SHIPMENT_TEU_WINDOW.name],
            flights=measures[FLIGHTS_OPERATED_WINDOW.name],
            finance=measures[FINANCE_USD_WINDOW.name],
            datachannel=measures[DATACHANNEL_BYTES_WINDOW.name],
            streams={stream: StreamHealth(**values) for stream, values in counts.items()},
        )

    @classmethod
    def from_text(cls, text: str) -> Snapshot:
        """The snapshot of a Prometheus text exposition, as /metrics serves it."""
        return cls.from_samples(parse_metrics(text))

    @staticmethod
    def total(measure: Mapping[tuple[str, ...], ByWindow], window: str) -> float:
        """``measure`` (one of the dicts above) summed over its rows for ``window``."""
        return sum(by_window.get(window, 0.0) for by_window in measure.values())

    def pipeline_total(self) -> StreamHealth:
        """The pipeline counts of every stream added up."""
        health = self.streams.values()
        return StreamHealth(
            *(sum(getattr(item, name) for item in health) for name in StreamHealth.__dataclass_fields__)
        )


@dataclass(frozen=True)
class RunInfo:
    """The addresses and state of a ``corridor run``, shown above the numbers."""

    metrics_url: str  #: where the worker serves /metrics
    broker: str  #: bootstrap address and who runs the broker
    worker: str  #: the worker process and where its output goes
    simulator: str  #: scenario, speed and events published, or "off"
    status: str = "running"  #: what the view is waiting for, if anything
    uptime_s: float = 0.0
    ingest: str = "off"  #: where the HTTP ingest takes events, or why it is off


def render(
    snapshot: Snapshot | None,
    info: RunInfo,
    previous: Snapshot | None = None,
    interval_s: float = 1.0,
) -> RenderableType:
    """The whole live view; ``previous`` (taken ``interval_s`` earlier) gives events per second."""
    parts: list[RenderableType] = [_header(info)]
    if snapshot is None:
        parts.append(Text(f"\n{info.status}", style="yellow"))
        return Group(*parts)
    parts += [
        _side_by_side(_shipments_table(snapshot), _flights_table(snapshot)),
        _side_by_side(_finance_table(snapshot), _datachannel_table(snapshot)),
        _pipeline_table(snapshot, previous, interval_s),
    ]
    spaced: list[RenderableType] = []
    for part in parts:
        spaced += [part, Text()]
    return Group(*spaced[:-1])


def summary_fields(snapshot: Snapshot) -> dict[str, float]:
    """The headline numbers of a snapshot, for a structured log line."""
    pipeline = snapshot.pipeline_total()
    return {
        "teu_1h": snapshot.total(snapshot.teu, "1h"),
        "teu_24h": snapshot.total(snapshot.teu, "24h"),
        "teu_7d": snapshot.total(snapshot.teu, "7d"),
        "flights_7d": snapshot.total(snapshot.flights, "7d"),
        "finance_usd_24h": snapshot.total(snapshot.finance, "24h"),
        "finance_usd_7d": snapshot.total(snapshot.finance, "7d"),
        "datachannel_bits_per_second_5m": bits_per_second(snapshot.total(snapshot.datachannel, "5m"), "5m"),
        "datachannel_bits_per_second_24h": bits_per_second(snapshot.total(snapshot.datachannel, "24h"), "24h"),
        "events_received": pipeline.received,
        "events_accepted": pipeline.accepted,
        "events_rejected": pipeline.rejected,
        "events_duplicate": pipeline.duplicate,
        "events_late": pipeline.late,
        "consumer_lag": pipeline.lag,
    }


def summary_line(snapshot: Snapshot) -> str:
    """One line with the headline numbers, for logs when there is no terminal."""
    fields = summary_fields(snapshot)
    return (
        f"TEU 1h {_count(fields['teu_1h'])} 24h {_count(fields['teu_24h'])} 7d {_count(fields['teu_7d'])}"
        f" | flights 7d {_count(fields['flights_7d'])}"
        f" | financing 24h {_usd(fields['finance_usd_24h'])} 7d {_usd(fields['finance_usd_7d'])}"
        f" | data channel 5m {_bit_rate(fields['datachannel_bits_per_second_5m'])}"
        f" 24h {_bit_rate(fields['datachannel_bits_per_second_24h'])}"
        f" | events received {_count(fields['events_received'])} accepted {_count(fields['events_accepted'])}"
        f" rejected {_count(fields['events_rejected'])} duplicate {_count(fields['events_duplicate'])}"
        f" late {_count(fields['events_late'])} | lag {_count(fields['consumer_lag'])}"
    )


def bits_per_second(window_bytes: float, window: str) -> float:
    """The average rate of ``window_bytes`` carried over the whole ``window``."""
    return window_bytes * 8 / WINDOW_SECONDS[window]


# --- formatting -------------------------------------------------------------------------------


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _significant(value: float) -> str:
    """Three significant digits for values from 1 to 999: 1.62, 16.2, 162."""
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _usd(value: float) -> str:
    for scale, suffix in ((1e9, " bn"), (1e6, " m"), (1e3, " k")):
        if abs(value) >= scale:
            return f"USD {_significant(value / scale)}{suffix}"
    return f"USD {value:,.0f}"


def _bit_rate(bits: float) -> str:
    for scale, unit in ((1e9, "Gbit/s"), (1e6, "Mbit/s"), (1e3, "kbit/s")):
        if bits >= scale:
            return f"{_significant(bits / scale)} {unit}"
    return f"{bits:.0f} bit/s"


def _window_bit_rate(window_bytes: float, window: str) -> str:
    return _bit_rate(bits_per_second(window_bytes, window))


def _bytes(value: float) -> str:
    for scale, unit in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if value >= scale:
            return f"{_significant(value / scale)} {unit}"
    return f"{value:.0f} B"


def _window_cell(by_window: ByWindow, window: str, show: Format = _count) -> str:
    value = by_window.get(window)
    return _NO_VALUE if value is None else show(value)


def format_duration(seconds: float) -> str:
    """Whole seconds as ``H:MM:SS``."""
    minutes, second = divmod(int(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02d}:{second:02d}"


# --- tables ------------------------------------------------------------------------------------


def _header(info: RunInfo) -> RenderableType:
    title = Text.assemble(("Corridor Monitor", "bold cyan"), f"   up {format_duration(info.uptime_s)}   ",
                          (info.status, "green" if info.status == "running" else "yellow"))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("metrics", info.metrics_url)
    grid.add_row("broker", info.broker)
    grid.add_row("worker", info.worker)
    grid.add_row("ingest", info.ingest)
    grid.add_row("simulator", info.simulator)
    return Group(title, grid)


def _table(title: str, keys: tuple[str, ...], columns: tuple[str, ...]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, padding=(0, 1),
                  show_edge=False)
    for key in keys:
        table.add_column(key)
    for column in columns:
        table.add_column(column, justify="right", no_wrap=True)
    return table


def _side_by_side(left: Table, right: Table) -> Columns:
    # Side by side when the terminal is wide enough, one above the other when not.
    return Columns([left, right], padding=(0, 4))


def _rows(measure: Mapping[tuple[str, ...], ByWindow]) -> list[tuple[str, ...]]:
    # Stable rows for a live view; the registry's catch-all last.
    return sorted(measure, key=lambda key: ("other" in key, key))


def _windows_table(title: str, keys: tuple[str, ...], measure: Mapping[tuple[str, ...], ByWindow],
                   windows: tuple[str, ...], show: Format) -> Table:
    table = _table(title, keys, windows)
    for key in _rows(measure):
        table.add_row(*key, *(_window_cell(measure[key], window, show) for window in windows))
    if len(measure) > 1:
        padding = [""] * (len(keys) - 1)
        table.add_row("total", *padding, *(show(Snapshot.total(measure, window)) for window in windows), style="bold")
    return table


def _shipments_table(snapshot: Snapshot) -> Table:
    return _windows_table("Shipments: TEU departed", ("route",), snapshot.teu, ("1h", "24h", "7d"), _count)


def _flights_table(snapshot: Snapshot) -> Table:
    return _windows_table("Flights operated", ("route", "service"), snapshot.flights, ("24h", "7d"), _count)


def _finance_table(snapshot: Snapshot) -> Table:
    return _windows_table("Financing signed", ("instrument",), snapshot.finance, ("24h", "7d"), _usd)


def _datachannel_table(snapshot: Snapshot) -> Table:
    table = _table("Data channel throughput", ("link", "direction"), ("5m", "24h", "7d volume"))
    for key in _rows(snapshot.datachannel):
        by_window = snapshot.datachannel[key]
        rates = [_window_cell(by_window, window, partial(_window_bit_rate, window=window)) for window in ("5m", "24h")]
        table.add_row(*key, *rates, _window_cell(by_window, "7d", _bytes))
    return table


def _pipeline_table(snapshot: Snapshot, previous: Snapshot | None, interval_s: float) -> Table:
    columns = ("received", "accepted", "rejected", "duplicate", "late", "lag", "accepted/s")
    table = _table("Pipeline", ("stream",), columns)
    rows = [(stream, snapshot.streams[stream]) for stream in sorted(snapshot.streams, key=_stream_order)]
    rows.append(("total", snapshot.pipeline_total()))
    for stream, health in rows:
        before = _previous_health(previous, stream)
        rate = _NO_VALUE if before is None else _count(max(health.accepted - before.accepted, 0) / interval_s)
        table.add_row(
            stream, _count(health.received), _count(health.accepted),
            Text(_count(health.rejected), style="red" if health.rejected else ""),
            _count(health.duplicate), _count(health.late), _count(health.lag), rate,
            style="bold" if stream == "total" else None,
        )
    return table


def _stream_order(stream: str) -> tuple[int, str]:
    return (FAMILY_NAMES.index(stream) if stream in FAMILY_NAMES else len(FAMILY_NAMES), stream)


def _previous_health(previous: Snapshot | None, stream: str) -> StreamHealth | None:
    if previous is None:
        return None
    return previous.pipeline_total() if stream == "total" else previous.streams.get(stream)
