"""Soak: rounds of replay + SIGKILL at random points, checked exactly against the reference.

``python -m tests.soak [--rounds N] [--events N] [--stores memory://,rocksdb://] [--seed S]``
(``make soak``). Each round starts its own embedded broker, writes a replay with a fresh
seed, runs one worker, SIGKILLs it at three random points of progress and restarts it, and
compares every exported sample with the independent reference. A round prints its seed and
kill points, so ``--seed`` replays it; the last line sums up every round:
``rounds N, exact N, lost 0, doubled 0``. Exit status 1 when any round was not exact.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from streams.kafka.admin import create_topics
from streams.kafka.broker import EmbeddedBroker
from tests.integration.conftest import broker_settings_for, free_port
from tests.integration.workers import (
    GROUP_ENV,
    RECEIVED,
    WorkerProcess,
    expected_received,
    produce,
    received_by_stream,
    total,
    wait_for,
    window_safe_now,
)
from tests.replay import ReplayData, expected_metrics, mismatches


def soak_round(store: str, events: int, seed: int, workdir: Path) -> tuple[bool, int, int, str]:
    """One round: (exact, events lost, events counted twice, what differed)."""
    rng = random.Random(seed)
    with EmbeddedBroker(port=free_port()) as broker:
        asyncio.run(create_topics(broker_settings_for(broker.bootstrap)))
        records = ReplayData(time.time(), seed=seed).build(events)
        asyncio.run(produce(broker.bootstrap, records))
        want = expected_received(records)
        everything = sum(want.values())
        kill_points = sorted(round(rng.uniform(0.1, 0.9) * everything) for _ in range(3))
        print(f"  {store} seed {seed} kills after {kill_points} of {everything} events", flush=True)
        worker = WorkerProcess(broker.bootstrap, workdir / "state", workdir / "worker.log",
                               app_id="corridor-soak", store=store, env=GROUP_ENV).start()
        try:
            for point in kill_points:
                def passed(point: int = point) -> bool:
                    samples = worker.scrape()
                    return samples is not None and total(samples, RECEIVED) >= point

                wait_for(passed, timeout=300, interval=0.05, message=f"progress past {point} events")
                worker.kill()
                worker.start()

            def settled():
                samples = worker.scrape()
                if samples is None:
                    return None
                received = received_by_stream(samples)
                done = all(received[f] == want.get(f, 0) for f in received)
                return samples if done or any(received[f] > want.get(f, 0) for f in received) else None

            with contextlib.suppress(AssertionError):  # the exact comparison below says what is missing
                wait_for(settled, timeout=300, interval=0.5, message="the restarted worker to drain")
            scrape_time, samples = window_safe_now(worker)
        finally:
            worker.stop()
    received = received_by_stream(samples)
    lost = int(sum(max(want[f] - received[f], 0) for f in want))
    doubled = int(sum(max(received[f] - want[f], 0) for f in want))
    problems = mismatches(samples, expected_metrics(records, scrape_time))
    return not problems and not lost and not doubled, lost, doubled, "; ".join(problems[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds per store (default 20)")
    parser.add_argument("--events", type=int, default=100_000, help="events per round's replay (default 100,000)")
    parser.add_argument("--stores", default="memory://,rocksdb://", help="comma-separated stores to soak")
    parser.add_argument("--seed", type=int, default=None, help="replay one round with this seed")
    args = parser.parse_args()
    stores = [s for s in args.stores.split(",") if s]
    seeds = random.Random()
    totals = Counter()
    for store in stores:
        outcome = Counter()
        rounds = 1 if args.seed is not None else args.rounds
        for number in range(1, rounds + 1):
            seed = args.seed if args.seed is not None else seeds.randrange(1 << 30)
            workdir = Path(tempfile.mkdtemp(prefix="corridor-soak-"))
            started = time.monotonic()
            exact, lost, doubled, problems = soak_round(store, args.events, seed, workdir)
            if exact:
                shutil.rmtree(workdir)
                verdict = "exact"
            else:
                verdict = f"NOT EXACT: lost {lost}, doubled {doubled}; {problems}; worker log in {workdir}"
            print(f"round {number}/{rounds} {store} seed {seed}: {verdict} "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
            outcome.update(rounds=1, exact=int(exact), lost=lost, doubled=doubled)
        print(f"{store}: {summary(outcome)}", flush=True)
        totals.update(outcome)
    print(summary(totals), flush=True)
    return 0 if totals["exact"] == totals["rounds"] else 1


def summary(counts: Counter) -> str:
    return f"rounds {counts['rounds']}, exact {counts['exact']}, lost {counts['lost']}, doubled {counts['doubled']}"


if __name__ == "__main__":
    sys.exit(main())
