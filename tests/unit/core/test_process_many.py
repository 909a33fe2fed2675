"""Records applied in batches leave exactly the state, outcomes and checkpoints of records applied one by one."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.checkpoint import CHUNK_ENTRIES, plan_checkpoint
from streams.core.processor import FamilyProcessor
from streams.core.registry import Registry
from streams.core.state import PartitionState
from streams.settings import Settings
from tests.replay import ReplayData

NOW = datetime(2026, 11, 26, 12, 0, 7, tzinfo=UTC).timestamp()
SETTINGS, REGISTRY = Settings(), Registry.load(None)
#: Records of every family (envelopes, single events, malformed records, bad items, producer retries,
#: timestamps out of order), as the replay tests write them.
RECORDS = ReplayData(NOW, seed=11).build(2000)


def records_of(family: str) -> list[tuple[int, float, bytes]]:
    return [(offset, r.timestamp, r.value) for offset, r in enumerate(r for r in RECORDS if r.family == family)]


def head(record: bytes) -> dict:
    """A head record's content, whatever the order its label sets were first seen in."""
    doc = orjson.loads(record)
    doc["counters"] = {m: sorted(rows) for m, rows in doc["counters"].items()}
    doc["windows"] = {m: sorted(w["series"]) for m, w in doc["windows"].items()}
    doc["histograms"] = {m: sorted(rows) for m, rows in doc["histograms"].items()}
    return doc


def snapshot(state: PartitionState) -> tuple[dict, dict[int, bytes], list]:
    """Everything a checkpoint holds: the head record, every dedup bucket's hashes and every journey."""
    buckets = {bucket: state.dedup.hashes(bucket) for bucket in state.dedup.bucket_sizes()}
    journeys = [] if state.journeys is None else sorted(j.row() for j in state.journeys.journeys.values())
    return head(state.head_bytes(CHUNK_ENTRIES)), buckets, journeys


def outcomes_of(outcomes) -> list[tuple]:
    return [(o.applied, o.accepted_event_times, o.dead_letters) for o in outcomes]


@pytest.mark.parametrize("family", ["shipments", "flights", "finance", "datachannel"])
@settings(max_examples=5, deadline=None)
@given(sizes=st.lists(st.integers(1, 60), min_size=1, max_size=40), replays=st.sets(st.integers(0, 200)))
def test_batches_apply_as_records_one_by_one(family, sizes, replays):
    processor = FamilyProcessor(family, SETTINGS, REGISTRY)
    original = records_of(family)
    # Some records come again (a seek back): held ones are skipped in both modes.
    records = [r for i, r in enumerate(original) for _ in range(2 if i in replays else 1)]
    one_by_one, batched = processor.new_state(), processor.new_state()
    expected = [processor.process(one_by_one, 0, *record) for record in records]
    got = []
    start, turn = 0, 0
    while start < len(records):
        size = sizes[turn % len(sizes)]
        got += processor.process_many(batched, 0, records[start : start + size])
        start, turn = start + size, turn + 1
    assert outcomes_of(got) == outcomes_of(expected)
    assert snapshot(batched) == snapshot(one_by_one)
    assert sum(o.applied for o in got) == len(original)


def test_a_failing_measure_leaves_the_state_as_it_was(monkeypatch):
    processor = FamilyProcessor("datachannel", SETTINGS, REGISTRY)
    state = processor.new_state()
    records = records_of("datachannel")[:30]
    processor.process_many(state, 0, records[:10])
    before = snapshot(state)

    def broken(*args):
        raise ArithmeticError("a bug")

    monkeypatch.setattr(processor, "measure", broken)
    with pytest.raises(ArithmeticError):
        processor.process_many(state, 0, records[10:])
    assert snapshot(state) == before and state.offset == 9
    monkeypatch.undo()
    processor.process_many(state, 0, records[10:])
    reference = processor.new_state()
    processor.process_many(reference, 0, records)
    assert snapshot(state) == snapshot(reference)


def test_a_checkpoint_of_batched_records_is_the_same_records():
    processor = FamilyProcessor("shipments", SETTINGS, REGISTRY)
    records = records_of("shipments")
    one_by_one, batched = processor.new_state(), processor.new_state()
    for record in records:
        processor.process(one_by_one, 0, *record)
    processor.process_many(batched, 0, records)
    (*chunks, (key, value)), (*expected_chunks, (expected_key, expected)) = (
        plan_checkpoint(0, batched, {}).records, plan_checkpoint(0, one_by_one, {}).records
    )
    assert chunks == expected_chunks and key == expected_key and head(value) == head(expected)
    assert orjson.loads(batched.head_bytes(CHUNK_ENTRIES))["offset"] == len(records) - 1
