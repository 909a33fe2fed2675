"""A flood of made-up routes, carriers, links and countries cannot grow /metrics or the worker's state.

10,000 valid events per family, each naming values no registry holds, go to a real worker. Every
series on /metrics must stay within the bound docs/metrics.md ("Cardinality bound") computes from
the registry and the metric declarations, the unknown names must all be counted under ``other``,
and the partition state (its checkpoint head records in the changelog, which hold every label set
the worker keeps) must hold no label value outside the registry, ``other`` and the enums.
"""

from __future__ import annotations

import asyncio
import itertools
import string
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import pairwise
from math import prod
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from schemas.common import utc_iso
from schemas.datachannel import Direction
from schemas.families import FAMILIES, FAMILY_NAMES
from schemas.finance import FinanceStatus, Instrument
from schemas.flights import FlightService, FlightStatus
from schemas.samples import sample_event
from schemas.shipments import Milestone, TransportMode
from streams.core.checkpoint import head_key
from streams.core.families import MEASURED
from streams.core.processor import rejected_reasons
from streams.core.registry import OTHER, Registry
from streams.settings import DEFAULT_WINDOWS, Settings
from streams.worker.metrics import COMMIT_LATENCY_BUCKETS, EVENT_DELAY_BUCKETS, build_registry
from tests.integration.conftest import read_topic
from tests.integration.workers import received_by_stream, wait_for, worker_for

pytestmark = pytest.mark.integration

FLOOD = 10_000  # events per family, each with names no registry holds
ENVELOPE = 500
APP_ID = "corridor-cardinality"
PARTITIONS: int = Settings.model_fields["topic_partitions"].default

#: Label name -> the enum its values come from, per family (labels the registry does not bound).
ENUM_LABELS: Mapping[str, Mapping[str, type[StrEnum]]] = {
    "shipments": {"mode": TransportMode, "milestone": Milestone},
    "flights": {"service": FlightService, "status": FlightStatus},
    "finance": {"instrument": Instrument},
    "datachannel": {"direction": Direction},
}


def label_values(registry: Registry) -> dict[str, dict[str, set[str]]]:
    """Every value each label of each family can take: the registry's and ``other``, or the enum's."""
    known = {
        "shipments": {"corridor": registry.corridors, "route": registry.shipment_routes},
        "flights": {"route": registry.flight_routes, "carrier": registry.carriers},
        "finance": {"lender_country": registry.countries, "borrower_country": registry.countries},
        "datachannel": {"link": registry.links},
    }
    values = {family: {label: {*names, OTHER} for label, names in labels.items()} for family, labels in known.items()}
    for family, enums in ENUM_LABELS.items():
        values[family] |= {label: {str(member) for member in enum} for label, enum in enums.items()}
    routes = [route.split("-") for route in registry.shipment_routes]
    values["shipments"] |= {
        "location": {place for places in routes for place in places} | {OTHER},
        "leg": {f"{a}-{b}" for places in routes for a, b in pairwise(places)} | {OTHER},
        "punctuality": {"on_time", "early", "late"},
    }
    values["flights"]["punctuality"] = {"on_time", "late", "cancelled"}
    return values


#: A counter of each family and the labels that carry the flood's names: all of it is counted under ``other``.
UNDER_OTHER = {
    "corridor_shipments": ("corridor", "route"),
    "corridor_flights": ("route", "carrier"),
    "corridor_finance_usd": ("lender_country", "borrower_country"),
    "corridor_datachannel_bytes": ("link",),
}
#: The label of ``corridor_last_event_timestamp_seconds{key}`` per family.
FRESHNESS_KEY = {"shipments": "route", "flights": "route", "finance": "instrument", "datachannel": "link"}


def series_bound(registry: Registry, partitions: int, windows: int, reasons: int, owners: int = 1) -> int:
    """The most series the state-derived metrics can have (docs/metrics.md, "Cardinality bound").

    Counters and histograms are per source partition and owner; histograms export their buckets,
    +Inf, _sum and _count; window gauges are per window; pipeline counters are received,
    accepted, duplicate, late and one rejected series per reason code.
    """
    values = label_values(registry)
    total = 0
    for family, measured in MEASURED.items():
        size = {label: len(names) for label, names in values[family].items()}
        per_partition = sum(prod(size[label] for label in series.labels) for series in measured.counters)
        per_partition += sum(
            prod(size[label] for label in series.labels) * (len(series.buckets) + 3) for series in measured.histograms
        )
        per_partition += 4 + reasons
        total += partitions * owners * per_partition
        total += windows * sum(prod(size[label] for label in series.labels) for series in measured.windows)
        total += sum(prod(size[label] for label in series.labels) for series in measured.gauges)
        total += size[FRESHNESS_KEY[family]]
    return total


def worker_series_bound(families: int, partitions: int) -> int:
    """The worker's own series, which no event adds to (docs/metrics.md, "The worker itself")."""
    collectors = sum(len(metric.samples) for metric in build_registry(process=True).collect())
    per_stream = (len(EVENT_DELAY_BUCKETS) + 3) + 4  # delay histogram, restoring, gaps, checkpoint failures
    per_partition = 3  # consumer lag in records and in seconds, checkpoint age
    # build info, restore seconds, rebalances, the commit-latency histogram
    process = 3 + len(COMMIT_LATENCY_BUCKETS) + 3
    send_errors = 1 + families  # by topic: the dead-letter topic and the changelogs
    return collectors + families * (per_stream + partitions * per_partition) + process + send_errors


def codes(alphabet: str, length: int) -> Iterator[str]:
    return ("".join(chars) for chars in itertools.product(alphabet, repeat=length))


def flood(now: datetime, registry: Registry) -> dict[str, list[dict[str, Any]]]:
    """FLOOD valid events per family, every one naming a route, carrier, link or country pair of its own."""
    def at(i: int) -> str:
        return utc_iso(now - timedelta(seconds=120 + i % 3_000))

    alnum = string.ascii_uppercase + string.digits
    carriers = itertools.cycle([c for c in codes(alnum, 2) if c not in registry.carriers])
    countries = [c for c in codes(string.ascii_uppercase, 2) if c not in registry.countries]
    locodes = codes(alnum, 3)
    flight_routes = (f"{a}-SIN" for a in codes(string.ascii_uppercase, 3) if f"{a}-SIN" not in registry.flight_routes)
    events: dict[str, list[dict[str, Any]]] = {family: [] for family in FAMILY_NAMES}
    for i in range(FLOOD):
        common = {"event_id": f"flood-{i}", "event_time": at(i)}
        origin = f"XX{next(locodes)}"
        events["shipments"].append(sample_event(
            "shipments", **common, route=f"{origin}-SGSIN", origin=origin, corridor=f"Z{i:04d}",
            milestone=str(Milestone.DEPARTED),
        ))
        events["flights"].append(sample_event(
            "flights", **common, route=next(flight_routes), carrier=next(carriers),
            status=str(FlightStatus.DEPARTED), scheduled_time=at(i), actual_time=at(i),
        ))
        events["finance"].append(sample_event(
            "finance", **common, lender_country=countries[i % len(countries)],
            borrower_country=countries[i // len(countries)], status=str(FinanceStatus.SIGNED), currency="USD",
        ))
        events["datachannel"].append(sample_event("datachannel", **common, link_id=f"FLOOD-{i:05d}"))
    return events


async def publish(bootstrap: str, events: dict[str, list[dict[str, Any]]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, max_batch_size=256 * 1024)
    await producer.start()
    try:
        sends = []
        for family, family_events in events.items():
            for n in range(0, len(family_events), ENVELOPE):
                sends.append(await producer.send(
                    FAMILIES[family].topic, orjson.dumps(family_events[n:n + ENVELOPE]), key=f"flood-{n}".encode(),
                ))
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


def state_label_sets(head: bytes) -> set[tuple[str, tuple[str, ...]]]:
    """Every (series, label values) a partition's checkpoint head record keeps."""
    doc = orjson.loads(head)
    sets = {(metric, tuple(row[:-1])) for metric, rows in doc["counters"].items() for row in rows}
    sets |= {
        (f"{metric}_window", tuple(series) if isinstance(series, list) else (series,))
        for metric, snapshot in doc["windows"].items() for series, _ in snapshot["series"]
    }
    sets |= {(metric, tuple(labels)) for metric, rows in doc["histograms"].items() for labels, _, _ in rows}
    return sets | {("last_seen", (key,)) for key in doc["last_seen"]}


async def newest_heads(bootstrap: str, family: str) -> dict[bytes, bytes]:
    heads = {head_key(p): b"" for p in range(PARTITIONS)}
    for record in await read_topic(bootstrap, f"{APP_ID}-state-{family}-changelog", idle_s=2.0):
        if record.key in heads and record.value is not None:
            heads[record.key] = record.value
    return heads


def test_a_flood_of_unknown_names_stays_within_the_series_bound_and_out_of_state(fresh_broker, tmp_path):
    registry = Registry.load()
    events = flood(datetime.now(UTC), registry)
    unknown_names = {
        name for family in events.values() for event in family
        for name in (event.get("route"), event.get("carrier"), event.get("link_id"),
                     event.get("lender_country"), event.get("borrower_country"))
        if name is not None
    }
    assert len(unknown_names) > 30_000
    worker = worker_for(fresh_broker, tmp_path, "cardinality", app_id=APP_ID).start()
    try:
        asyncio.run(publish(fresh_broker.bootstrap, events))

        def flooded() -> str | None:
            text = worker.metrics_text()
            samples = worker.scrape() if text else None
            if samples is None or any(v != FLOOD for v in received_by_stream(samples).values()):
                return None
            return text

        text = wait_for(flooded, timeout=240, message="the worker to receive the flood")
        assert worker.alive(), worker.log_tail()
        assert worker.probe("/healthz") == 200
    finally:
        worker.stop()

    series: Counter[str] = Counter()
    values: dict[str, set[str]] = {}
    other_counts: Counter[str] = Counter()
    for metric in text_string_to_metric_families(text):
        for sample in metric.samples:
            series[metric.name] += 1
            for label, value in sample.labels.items():
                values.setdefault(label, set()).add(value)
            if metric.name in UNDER_OTHER and all(sample.labels[label] == OTHER for label in UNDER_OTHER[metric.name]):
                other_counts[metric.name] += sample.value
    reasons = len(rejected_reasons())
    bound = series_bound(registry, PARTITIONS, len(DEFAULT_WINDOWS), reasons)
    own_bound = worker_series_bound(len(FAMILY_NAMES), PARTITIONS)
    state_derived = sum(n for name, n in series.items() if name.startswith("corridor_") and name not in {
        "corridor_build", "corridor_event_delay_seconds", "corridor_consumer_lag", "corridor_consumer_lag_seconds",
        "corridor_partitions_restoring",
        "corridor_restore_seconds", "corridor_checkpoint_age_seconds", "corridor_checkpoint_failures",
        "corridor_state_gaps", "corridor_rebalances", "corridor_commit_latency_seconds", "corridor_send_errors",
    })
    print(f"{sum(series.values())} series on /metrics ({state_derived} from state); bounds {bound} and {own_bound}")
    assert state_derived <= bound
    assert sum(series.values()) <= bound + own_bound
    # Every unknown name is counted, under "other".
    assert other_counts == {
        "corridor_shipments": FLOOD,
        "corridor_flights": FLOOD,
        "corridor_finance_usd": sum(float(event["amount"]) for event in events["finance"]),
        "corridor_datachannel_bytes": sum(event["bytes"] for event in events["datachannel"]),
    }
    for label in ("route", "carrier", "link", "lender_country", "borrower_country", "corridor"):
        assert values[label] & unknown_names == set(), f"{label} exported a name from the flood"

    allowed = {OTHER} | {v for labels in label_values(registry).values() for names in labels.values() for v in names}
    heads_bytes = 0
    for family in FAMILY_NAMES:
        heads = asyncio.run(newest_heads(fresh_broker.bootstrap, family))
        for key, head in heads.items():
            assert head, f"no checkpoint head {key!r} of {family}"
            heads_bytes += len(head)
            stray = {value for _, labels in state_label_sets(head) for value in labels} - allowed
            assert not stray, f"{family} {key!r} keeps label values no registry holds: {sorted(stray)[:5]}"
    # A key per unknown name would cost at least the name itself; the whole state costs less than the names.
    names_bytes = sum(map(len, unknown_names))
    print(f"checkpoint heads {heads_bytes} bytes; the flood's unknown names alone {names_bytes} bytes")
    assert heads_bytes < names_bytes
