"""Memory grows with label sets and window buckets, not with events: only the dedup index grows with them.

A partition state is fed the same traffic (the same routes, links and days of event time) once
with every simulated event copied k times and once copied 2k times under new ids, expiring as
the worker does at each checkpoint: the same label sets and the same window buckets, twice the
events. Everything the processing leaves allocated through the project's code, apart from the
dedup index (whose bytes per event tests/unit/core/test_dedup.py bounds) and pydantic's
process-wide cache of JSON strings (bounded by pydantic-core), must stay the same, and no
validated event may outlive its batch.
"""

from __future__ import annotations

import gc
import math
import os
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.common import BaseEvent
from schemas.families import FAMILY_NAMES
from streams.core.processor import FamilyProcessor
from streams.core.registry import Registry
from streams.settings import Settings
from streams.sim.simulator import Scenario, SimulationConfig, generate

START = datetime(2026, 11, 20, tzinfo=UTC)
DAYS = timedelta(days=3)
FEWER = 5_000  # at least this many events in the smaller run
ENVELOPE = 50  # small envelopes: a batch's own buckets, dropped at its expiry, stay few
#: Allocations made through these files are not the state's: the index is measured on its own,
#: and pydantic-core keeps a bounded cache of the strings it parsed.
NOT_STATE = ("streams/core/dedup.py", "streams/core/journeys.py", "pydantic/type_adapter.py")
#: Only what the code under test allocates counts: threads other tests left behind allocate too.
ROOT = Path(__file__).resolve().parents[3]
UNDER_TEST = (str(ROOT / "streams") + os.sep, str(ROOT / "schemas") + os.sep)
#: What a measurement may differ by with no event held: objects that outlive a run without growing
#: with its events (floats, a dict's spare room) show or not as the allocator reuses freed blocks,
#: which it does differently from run to run: up to 18 KB seen over 5,000 events more (3.6 bytes
#: each). A float held per event, the smallest leak there is, would add 24 bytes each.
NOISE_BYTES_PER_EVENT = 8
#: Frames kept per allocation: enough to see through numpy's functions to the caller.
FRAMES = 8


@pytest.fixture(scope="module")
def traffic() -> dict[str, list[dict[str, Any]]]:
    """Three simulated days of each family, in event-time order."""
    by_family: dict[str, list[dict[str, Any]]] = {name: [] for name in FAMILY_NAMES}
    for family, event in generate(SimulationConfig(Scenario.BASELINE, seed=7, start=START), DAYS):
        by_family[family].append(event)
    return by_family


def copied(events: list[dict[str, Any]], copies: int) -> list[dict[str, Any]]:
    """Each event ``copies`` times under new ids, at its own event time."""
    return [{**event, "event_id": f"{event['event_id']}#{n}"} for event in events for n in range(copies)]


def retained(family: str, events: list[dict[str, Any]]) -> int:
    """Bytes the processing of ``events`` leaves allocated, outside the dedup index and pydantic's cache."""
    processor = FamilyProcessor(family, Settings(), Registry.load(None))
    records = []
    for offset, start in enumerate(range(0, len(events), ENVELOPE)):
        batch = events[start:start + ENVELOPE]
        consumed = datetime.fromisoformat(batch[-1]["event_time"]).timestamp() + 2.0
        records.append((offset, consumed, orjson.dumps(batch)))
    gc.collect()
    tracemalloc.start(FRAMES)
    try:
        state = processor.new_state()
        for record in records:
            processor.process_many(state, 0, [record])
            state.expire(record[1])  # as the worker does before each checkpoint
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    assert state.counters["events_accepted"][()] == len(events)
    assert not [thing for thing in gc.get_objects() if isinstance(thing, BaseEvent)], "a validated event outlived"
    return sum(stat.size for stat in snapshot.statistics("traceback")
               if any(frame.filename.startswith(UNDER_TEST) for frame in stat.traceback)
               and not any(frame.filename.endswith(NOT_STATE) for frame in stat.traceback))


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_twice_the_events_on_the_same_keys_and_buckets_take_no_more_memory_outside_the_dedup_index(
        family: str, traffic: dict[str, list[dict[str, Any]]]) -> None:
    events = traffic[family]
    copies = math.ceil(FEWER / len(events))
    fewer = retained(family, copied(events, copies))
    more = retained(family, copied(events, 2 * copies))
    # Nothing held per event: under NOISE_BYTES_PER_EVENT for each event more, a third of the
    # smallest object a leak could hold per event. Less is the allocator's doing.
    assert more - fewer < NOISE_BYTES_PER_EVENT * len(events) * copies, (fewer, more)
