"""Times the pure record processor, checkpoints and the dedup index's memory, without Kafka.

    .venv/bin/python scripts/profile_processor.py                  # events/s per family, envelopes and single events
    .venv/bin/python scripts/profile_processor.py --profile datachannel   # where an envelope's time goes (pyinstrument)
    .venv/bin/python scripts/profile_processor.py --checkpoints --dedup-memory

Records are built from the simulator's traffic (sparse families are repeated under new
event ids) and applied with ``FamilyProcessor.process`` to a fresh partition state; each
figure is the best of ``--repeat`` runs over the same records, so two versions of the code
compare best run against best run on a shared machine.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from schemas.families import FAMILIES, FAMILY_NAMES  # noqa: E402
from streams.core.checkpoint import plan_checkpoint  # noqa: E402
from streams.core.dedup import DedupIndex  # noqa: E402
from streams.core.processor import FamilyProcessor  # noqa: E402
from streams.core.registry import Registry  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.sim.simulator import Scenario, SimulationConfig, generate  # noqa: E402

START = datetime(2026, 11, 20, tzinfo=UTC)
SPAN = timedelta(days=6)  # inside the 7-day dedup horizon of the last record

Record = tuple[float, bytes]  # Kafka timestamp, value


def simulated_events(events_per_family: int) -> dict[str, list[dict[str, Any]]]:
    """``events_per_family`` events of each family, in event-time order."""
    by_family: dict[str, list[dict[str, Any]]] = {name: [] for name in FAMILY_NAMES}
    for family, event in generate(SimulationConfig(Scenario.BASELINE, start=START), SPAN):
        by_family[family].append(event)
    for family, events in by_family.items():
        if len(events) < events_per_family:  # flights and finance are sparse: repeat under new ids
            copies = itertools.cycle(events)
            events = [{**event, "event_id": f"{event['event_id']}#{n}"}
                      for n, event in zip(range(events_per_family), copies, strict=False)]
        else:
            step = len(events) / events_per_family
            events = [events[int(i * step)] for i in range(events_per_family)]
        by_family[family] = sorted(events, key=lambda event: event["event_time"])
    return by_family


def _timestamp(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["event_time"]).timestamp() + 2.0


def envelopes(family: str, events: list[dict[str, Any]], size: int) -> list[Record]:
    """Batch envelopes of up to ``size`` events sharing a key, as the SDK sends them."""
    key_field = FAMILIES[family].key_field
    records: list[Record] = []
    pending: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        group = pending.setdefault(event[key_field], [])
        group.append(event)
        if len(group) == size:
            records.append((_timestamp(event), orjson.dumps(group)))
            del pending[event[key_field]]
    records += [(_timestamp(group[-1]), orjson.dumps(group)) for group in pending.values()]
    return records


def singles(events: list[dict[str, Any]]) -> list[Record]:
    return [(_timestamp(event), orjson.dumps(event)) for event in events]


def event_count(records: list[Record]) -> int:
    """Events in ``records``: an envelope's length, or one per single-event record."""
    return sum(len(orjson.loads(raw)) if raw[:1] == b"[" else 1 for _, raw in records)


def loads(family: str, events: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, tuple[list[Record], int]]:
    """What each family is timed on, by name: records and the ``process_many`` batch (0: ``process`` each)."""
    single = singles(events[: args.singles])
    return {
        f"envelopes of {args.envelope}": (envelopes(family, events, args.envelope), 0),
        "single events": (single, 0),
        f"single events, process_many of {args.envelope}": (single, args.envelope),
    }


def run_once(processor: FamilyProcessor, records: list[Record], batch: int = 0) -> float:
    """Seconds to apply ``records`` one ``process`` call each, or ``batch`` at a time with ``process_many``."""
    state = processor.new_state()
    process = processor.process
    numbered = [(offset, timestamp, raw) for offset, (timestamp, raw) in enumerate(records)]
    gc.collect()
    started = time.perf_counter()
    if batch:
        for start in range(0, len(numbered), batch):
            processor.process_many(state, 0, numbered[start : start + batch])
    else:
        for offset, timestamp, raw in numbered:
            process(state, 0, offset, timestamp, raw)
    elapsed = time.perf_counter() - started
    accepted = state.counters["events_accepted"][()]
    expected = event_count(records)
    if accepted != expected:
        raise RuntimeError(f"{accepted} of {expected} events accepted")
    return elapsed


def best(repeat: int, timed: Callable[[], float]) -> tuple[float, float]:
    runs = [timed() for _ in range(repeat)]
    return min(runs), statistics.median(runs)


def throughput(args: argparse.Namespace, events: dict[str, list[dict[str, Any]]]) -> None:
    settings, registry = Settings(), Registry.load(None)
    print(f"{'family':12} {'records':>8} {'events':>8} {'best ev/s':>11} {'median ev/s':>12}")
    for family in args.families:
        processor = FamilyProcessor(family, settings, registry)
        for name, (records, batch) in loads(family, events[family], args).items():
            count = event_count(records)
            fastest, median = best(args.repeat, lambda p=processor, r=records, b=batch: run_once(p, r, b))
            print(f"{family:12} {len(records):8,} {count:8,} {count / fastest:11,.0f} {count / median:12,.0f}  {name}")


def calls(args: argparse.Namespace, events: dict[str, list[dict[str, Any]]]) -> None:
    """Python function calls per event (cProfile's count): a measure of work that machine load does not blur."""
    import cProfile
    import pstats

    settings, registry = Settings(), Registry.load(None)
    print(f"{'family':12} {'calls/event':>12}")
    for family in args.families:
        processor = FamilyProcessor(family, settings, registry)
        for name, (records, batch) in loads(family, events[family], args).items():
            count = event_count(records)
            profiler = cProfile.Profile()
            profiler.runcall(run_once, processor, records, batch)
            total = pstats.Stats(profiler).total_calls  # type: ignore[attr-defined]
            print(f"{family:12} {total / count:12.1f}  {name}")


def profile(args: argparse.Namespace, events: dict[str, list[dict[str, Any]]]) -> None:
    from pyinstrument import Profiler  # profiling only: not a project dependency

    family = args.profile
    processor = FamilyProcessor(family, Settings(), Registry.load(None))
    records = envelopes(family, events[family], args.envelope) if not args.profile_singles else singles(events[family])
    profiler = Profiler(interval=0.0002)
    profiler.start()
    for _ in range(args.repeat):
        run_once(processor, records)
    profiler.stop()
    print(profiler.output_text(unicode=True, color=False, show_all=False))


def checkpoint_cost(args: argparse.Namespace) -> None:
    """Cost of planning a checkpoint of 1,000 new events, by how many the dedup bucket already holds."""
    processor = FamilyProcessor("datachannel", Settings(), Registry.load(None))
    hour = START.timestamp() + 6 * 86400
    sample = next(e for f, e in generate(SimulationConfig(Scenario.BASELINE, start=START), SPAN) if f == "datachannel")
    print(f"{'bucket holds':>12} {'plan ms (best)':>15} {'plan ms (median)':>17} {'bytes written':>14}")
    for held in (10_000, 100_000, 1_000_000):
        state = processor.new_state()
        ids = [f"held-{n}" for n in range(held)]
        state.dedup.admit(ids, [hour + 1.0] * held)
        state.offset, state.watermark = 0, hour + 60
        first = plan_checkpoint(0, state, {})
        state.dedup.mark_durable(first.dedup_sizes)
        counts = first.chunk_counts
        timings, written = [], 0
        for round_ in range(args.repeat):
            batch = [{**sample, "event_id": f"new-{round_}-{n}", "event_time": datetime.fromtimestamp(hour + 30, UTC)
                      .isoformat()} for n in range(1000)]
            processor.process(state, 0, state.offset + 1, hour + 60, orjson.dumps(batch))
            started = time.perf_counter()
            checkpoint = plan_checkpoint(0, state, counts)
            timings.append(time.perf_counter() - started)
            state.dedup.mark_durable(checkpoint.dedup_sizes)
            counts = checkpoint.chunk_counts
            written = sum(len(key) + len(value or b"") for key, value in checkpoint.records)
        print(f"{held:12,} {min(timings) * 1e3:15.3f} {statistics.median(timings) * 1e3:17.3f} {written:14,}")


def dedup_memory(args: argparse.Namespace) -> None:
    """Bytes per remembered event of a dedup index holding ``--dedup-events`` ids over 168 hourly buckets,
    without checkpoints, and with one every 10,000 events (as a worker takes them)."""
    n = args.dedup_events
    base = START.timestamp()
    ids = [f"DC-f17f7729-CQ-SG-1-cn_to_sg-{i:08d}" for i in range(n)]
    times = [base + (i * 604800.0 / n) for i in range(n)]
    for checkpoint_every in (0, 10_000):
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        index = DedupIndex(7 * 86400.0, 3600)
        for start in range(0, n, 500):
            index.admit(ids[start : start + 500], times[start : start + 500])
            if checkpoint_every and (start + 500) % checkpoint_every == 0:
                sizes = index.bucket_sizes()
                index.changed_chunks(4096)
                index.mark_durable(sizes)
        for start in range(0, 2000):  # single-event records too: the pending buffer is part of the cost
            index.admit([f"single-{start}"], [times[-1]])
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        entries = len(index)
        when = f"a checkpoint every {checkpoint_every:,} events" if checkpoint_every else "no checkpoints"
        print(f"dedup index, {when}: {entries:,} entries, nbytes() {index.nbytes() / entries:.1f} B/event, "
              f"traced {held / entries:.1f} B/event")
        del index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=list(FAMILY_NAMES), choices=FAMILY_NAMES)
    parser.add_argument("--events", type=int, default=20_000, help="events per family (envelopes)")
    parser.add_argument("--singles", type=int, default=5_000, help="single-event records per family")
    parser.add_argument("--envelope", type=int, default=500, help="events per envelope")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", choices=FAMILY_NAMES, help="profile this family with pyinstrument")
    parser.add_argument("--profile-singles", action="store_true", help="profile single-event records")
    parser.add_argument("--calls", action="store_true", help="count Python function calls per event instead")
    parser.add_argument("--checkpoints", action="store_true", help="checkpoint cost by dedup bucket size")
    parser.add_argument("--dedup-memory", action="store_true", help="dedup index bytes per event")
    parser.add_argument("--dedup-events", type=int, default=1_000_000)
    parser.add_argument("--no-throughput", action="store_true")
    args = parser.parse_args()
    if not args.no_throughput or args.profile:
        events = simulated_events(args.events)
        if args.profile:
            profile(args, events)
        elif args.calls:
            calls(args, events)
        else:
            throughput(args, events)
    if args.checkpoints:
        checkpoint_cost(args)
    if args.dedup_memory:
        dedup_memory(args)


if __name__ == "__main__":
    main()
