"""Record processing: validation, dedup, aggregation, checkpoints and scrape-time metrics."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams.core.checkpoint import Checkpoint, head_key, plan_checkpoint, read_checkpoint
from streams.core.clock import ManualClock
from streams.core.processor import FamilyProcessor, rejected_reasons
from streams.core.registry import Registry
from streams.settings import Settings
from streams.worker.metrics import CorridorCollector, ExportedPartition, build_registry

STALE_REASON = "stale_event_time"

NOW = datetime(2026, 11, 26, 12, 0, 7, tzinfo=UTC).timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def shipment(event_id: str, t: float, **overrides) -> dict:
    event = {
        "event_id": event_id, "event_time": iso(t), "source": "cq-rail-ops", "shipment_id": "S1",
        "corridor": "ILSTC", "route": "CNCKG-CNQZH-SGSIN", "mode": "rail_sea", "milestone": "departed",
        "teu": 2, "gross_weight_kg": 24000, "origin": "CNCKG", "destination": "SGSIN", "carrier": "CR Express",
    }
    event.update(overrides)
    return event


def written(store: dict[bytes, bytes], checkpoint: Checkpoint) -> dict[bytes, bytes]:
    """``store`` after the checkpoint's records, as a changelog read back keeps the newest value per key."""
    for key, value in checkpoint.records:
        if value is None:
            store.pop(key, None)
        else:
            store[key] = value
    return store


@pytest.fixture
def processor() -> FamilyProcessor:
    return FamilyProcessor("shipments", Settings(), Registry.load(None))


class OneFamily:
    """Exports each state as one partition of the shipments family."""

    def __init__(self, states):
        self.states = states

    def exported(self, family):
        if family != "shipments":
            return []
        return [ExportedPartition(partition, f"owner-{partition}", state.view())
                for partition, state in enumerate(self.states)]


def scrape(states, clock) -> dict[tuple[str, tuple], float]:
    """The samples, summed over partitions and owners."""
    collector = CorridorCollector(OneFamily(states), ["shipments"], rejected_reasons(), clock=clock)
    text = generate_latest(build_registry(collector)).decode()
    samples: dict[tuple[str, tuple], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = {k: v for k, v in s.labels.items() if k not in ("partition", "owner")}
            key = (s.name, tuple(sorted(labels.items())))
            samples[key] = samples.get(key, 0.0) + s.value
    return samples


def teu_window(samples, window: str, route: str = "CNCKG-CNQZH-SGSIN") -> float:
    key = ("corridor_shipment_teu_window",
           tuple(sorted({"corridor": "ILSTC", "route": route, "mode": "rail_sea", "window": window}.items())))
    return samples.get(key, 0.0)


def test_envelope_is_applied_once_and_replay_is_skipped(processor):
    state = processor.new_state()
    raw = orjson.dumps([shipment("a", NOW - 60), shipment("b", NOW - 30, teu=0.5)])
    outcome = processor.process(state, 0, 10, NOW, raw)
    assert outcome.applied and len(outcome.accepted_event_times) == 2
    assert state.counters["shipment_teu"][("ILSTC", "CNCKG-CNQZH-SGSIN", "rail_sea")] == 2500
    replay = processor.process(state, 0, 10, NOW, raw)
    assert not replay.applied
    assert state.counters["events_accepted"][()] == 2


def test_duplicates_count_once_within_and_across_records(processor):
    state = processor.new_state()
    processor.process(state, 0, 1, NOW, orjson.dumps([shipment("a", NOW - 5), shipment("a", NOW - 5)]))
    processor.process(state, 0, 2, NOW, orjson.dumps(shipment("a", NOW - 5)))
    assert state.counters["events_accepted"][()] == 1
    assert state.counters["events_duplicate"][()] == 2
    assert state.counters["events_received"][()] == 3


def test_late_and_stale_events_are_decided_by_record_timestamp(processor):
    state = processor.new_state()
    raw = orjson.dumps([
        shipment("late", NOW - 3600),
        shipment("fresh", NOW - 10),
        shipment("stale", NOW - 8 * 86400),
    ])
    outcome = processor.process(state, 0, 1, NOW, raw)
    assert state.counters["events_late"][()] == 1
    assert state.counters["events_accepted"][()] == 2
    assert state.counters["events_rejected"][(STALE_REASON,)] == 1
    [letter] = outcome.dead_letters
    assert letter.index == 2 and letter.reason == STALE_REASON and "event_time" in letter.message


def test_bad_item_is_dead_lettered_and_the_rest_applied(processor):
    state = processor.new_state()
    raw = orjson.dumps([shipment("a", NOW - 5), shipment("b", NOW - 5, teu=-1), shipment("c", NOW - 5)])
    outcome = processor.process(state, 3, 7, NOW, raw)
    assert state.counters["events_accepted"][()] == 2
    [letter] = outcome.dead_letters
    assert (letter.partition, letter.offset, letter.index) == (3, 7, 1)
    assert orjson.loads(letter.raw)["event_id"] == "b"
    assert "teu" in letter.message
    assert state.counters["events_rejected"][(letter.reason,)] == 1


def test_unparseable_record_counts_once(processor):
    state = processor.new_state()
    outcome = processor.process(state, 0, 1, NOW, b"{not json")
    assert [d.reason for d in outcome.dead_letters] == ["invalid_json"]
    assert outcome.dead_letters[0].raw == b"{not json"
    assert state.counters["events_received"][()] == 1
    assert state.offset == 1


def test_checkpoint_round_trip_restores_identical_metrics(processor):
    clock = ManualClock(NOW)
    state = processor.new_state()
    for offset in range(20):
        raw = orjson.dumps([shipment(f"e{offset}-{i}", NOW - offset * 400 - i) for i in range(3)])
        processor.process(state, 0, offset, NOW, raw)
    store = written({}, plan_checkpoint(0, state, {}))
    restored = read_checkpoint(0, store.get, processor.restore_state)
    assert restored.offset == state.offset == 19
    assert scrape([restored], clock) == scrape([state], clock)
    # The restored dedup index still knows every event_id.
    outcome = processor.process(restored, 0, 20, NOW, orjson.dumps(shipment("e3-1", NOW - 1201)))
    assert outcome.accepted_event_times == []


def test_restore_forgets_dedup_entries_newer_than_the_head(processor):
    state = processor.new_state()
    processor.process(state, 0, 1, NOW, orjson.dumps(shipment("a", NOW - 5)))
    store = written({}, plan_checkpoint(0, state, {}))
    processor.process(state, 0, 2, NOW, orjson.dumps(shipment("b", NOW - 5)))
    # The next checkpoint's chunks reached the changelog, its head did not (a crash in between).
    records = plan_checkpoint(0, state, {}).records
    chunks = records[:[key for key, _ in records].index(head_key(0))]  # what is written before the head
    store.update(chunks)
    restored = read_checkpoint(0, store.get, processor.restore_state)
    assert restored.offset == 1
    replay = processor.process(restored, 0, 2, NOW, orjson.dumps(shipment("b", NOW - 5)))
    assert replay.accepted_event_times, "b must be applied again on replay, not taken for a duplicate"


def test_silent_key_keeps_last_timestamp_and_windows_fall_to_zero(processor):
    clock = ManualClock(NOW)
    state = processor.new_state()
    processor.process(state, 0, 1, NOW, orjson.dumps([shipment("a", NOW - 20), shipment("b", NOW - 2)]))
    samples = scrape([state], clock)
    assert teu_window(samples, "5m") == 4.0
    assert teu_window(samples, "7d") == 4.0
    last = ("corridor_last_event_timestamp_seconds", (("key", "CNCKG-CNQZH-SGSIN"), ("stream", "shipments")))
    assert samples[last] == pytest.approx(NOW - 2)

    clock.advance(600)
    samples = scrape([state], clock)
    assert teu_window(samples, "5m") == 0.0
    assert teu_window(samples, "1h") == 4.0
    assert samples[last] == pytest.approx(NOW - 2)

    for step, window in ((7200, "1h"), (2 * 86400, "24h"), (8 * 86400, "7d")):
        clock.set(NOW + step)
        state.expire(clock.now())
        samples = scrape([state], clock)
        assert teu_window(samples, window) == 0.0
        assert samples[last] == pytest.approx(NOW - 2)
    assert samples[("corridor_shipment_teu_total",
                    (("corridor", "ILSTC"), ("mode", "rail_sea"), ("route", "CNCKG-CNQZH-SGSIN")))] == 4.0


def test_unknown_route_is_exported_as_other(processor):
    clock = ManualClock(NOW)
    state = processor.new_state()
    processor.process(state, 0, 1, NOW, orjson.dumps(shipment("a", NOW - 2, route="CNCKG-MYPKG", destination="MYPKG")))
    samples = scrape([state], clock)
    assert teu_window(samples, "5m", route="other") == 2.0


def test_pipeline_counters_are_precreated_for_every_reason(processor):
    samples = scrape([processor.new_state()], ManualClock(NOW))
    for reason in rejected_reasons():
        assert samples[("corridor_events_rejected_total", (("reason", reason), ("stream", "shipments")))] == 0.0


def test_a_record_the_processor_fails_on_is_dead_lettered_and_passed(processor):
    state = processor.new_state()
    outcome = processor.fail(state, 2, 41, b'{"x": 1}', RuntimeError("boom"))
    [letter] = outcome.dead_letters
    assert (letter.partition, letter.offset, letter.reason, letter.raw) == (2, 41, "processing_error", b'{"x": 1}')
    assert "boom" in letter.message
    assert state.offset == 41
    assert state.counters["events_rejected"][("processing_error",)] == 1
    assert not processor.process(state, 2, 41, NOW, b'{"x": 1}').applied


def test_dead_letter_headers_round_trip(processor):
    from streams.worker.deadletter import dead_letter_headers, parse_dead_letter_headers

    state = processor.new_state()
    outcome = processor.process(state, 1, 9, NOW, orjson.dumps([shipment("a", NOW), shipment("b", NOW, teu=-2)]))
    [letter] = outcome.dead_letters
    meta = parse_dead_letter_headers(dead_letter_headers("corridor.shipments.v1", letter))
    assert meta["source_topic"] == "corridor.shipments.v1"
    assert (meta["source_partition"], meta["source_offset"], meta["index"]) == (1, 9, 1)
    assert meta["reason"] == letter.reason
    assert [e["field"] for e in meta["field_errors"]] == ["teu"]


def test_an_oversized_record_is_dead_lettered_cut_to_size(processor):
    from streams.worker.deadletter import MAX_DEAD_LETTER_BYTES, dead_letter_value

    state = processor.new_state()
    huge = orjson.dumps([shipment(f"e{i}", NOW, carrier="x" * 100) for i in range(6000)])
    assert len(huge) > processor.rules.max_record_bytes
    [letter] = processor.process(state, 0, 1, NOW, huge).dead_letters
    assert letter.reason == "too_large"
    value, headers = dead_letter_value(letter)
    assert value == huge[:MAX_DEAD_LETTER_BYTES]
    assert headers == [("corridor.truncated_from", str(len(huge)).encode())]


def test_an_old_resend_after_the_dedup_entry_expired_is_not_counted_again(processor):
    state = processor.new_state()
    old = NOW - 6.9 * 86400
    processor.process(state, 0, 1, NOW, orjson.dumps(shipment("old", old)))
    # A record stamped two days later moves the partition's clock on; expiry forgets "old".
    processor.process(state, 0, 2, NOW + 2 * 86400, orjson.dumps(shipment("new", NOW + 2 * 86400 - 60)))
    state.expire(NOW + 2 * 86400)
    outcome = processor.process(state, 0, 3, NOW + 5, orjson.dumps(shipment("old", old)))
    assert outcome.accepted_event_times == []
    assert [d.reason for d in outcome.dead_letters] == [STALE_REASON]
    assert state.counters["events_accepted"][()] == 2
