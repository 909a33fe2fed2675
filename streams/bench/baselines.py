"""The baselines the bench holds the worker against, each run in a process of its own.

``python -m streams.bench.baselines aiokafka|faust --bootstrap HOST:PORT --expect N`` reads
the four family topics from their first record until it has counted ``N`` events, then
prints one JSON line ``{"events": N, "seconds": s, "cpu_seconds": c}``: the time from the
moment its code was handed the first record to the moment the last event was counted, and the
CPU time the process (all its threads) used meanwhile. Before that it prints
``{"counted": n}`` lines as it goes, and ``{"error": "..."}`` (exit 1) when ``N`` events did
not arrive within ``--timeout`` seconds.

- ``aiokafka``: a plain consumer (the ``--partitions`` of each topic assigned by hand, no
  group) in a ``getmany`` loop; every record validated with pydantic's ``TypeAdapter`` of the
  family's model (one event, or a list for an envelope) and every event counted per family
  and key in a dict.
- ``faust``: a faust app with one agent per topic that only counts (``async for value in
  stream``): faust's per-message stream path, memory store, no web server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from typing import Any

import orjson

from schemas.families import FAMILIES

#: How often progress is printed.
REPORT_EVERY_S = 0.5


class Counting:
    """Counts events towards an expected total and prints the protocol's lines."""

    def __init__(self, expect: int, clock: Callable[[], float] = time.perf_counter,
                 cpu_clock: Callable[[], float] = time.process_time) -> None:
        self.expect = expect
        self.clock = clock
        self.cpu_clock = cpu_clock
        self.counted = 0
        self.started: float | None = None
        self.started_cpu = 0.0
        self.finished: float | None = None
        self._reported = 0.0

    def first(self) -> None:
        if self.started is None:
            self.started = self.clock()
            self.started_cpu = self.cpu_clock()

    def add(self, events: int) -> bool:
        """Count ``events``; True once the expected total is reached (the first time only)."""
        self.counted += events
        if self.finished is not None:
            return False
        now = self.clock()
        if self.counted >= self.expect:
            self.finished = now
            emit({"events": self.counted, "seconds": now - self.started if self.started is not None else 0.0,
                  "cpu_seconds": self.cpu_clock() - self.started_cpu})
            return True
        if now - self._reported >= REPORT_EVERY_S:
            self._reported = now
            emit({"counted": self.counted})
        return False


def emit(line: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(line).decode() + "\n")
    sys.stdout.flush()


async def aiokafka_loop(bootstrap: str, partitions: int, expect: int, timeout_s: float) -> bool:
    """The plain consumer loop; True when it counted ``expect`` events in time."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from pydantic import TypeAdapter

    families = {family.topic: family for family in FAMILIES.values()}
    one = {topic: TypeAdapter(family.model) for topic, family in families.items()}
    many = {topic: TypeAdapter(list[family.model]) for topic, family in families.items()}  # type: ignore[name-defined]
    key_fields = {topic: family.key_field for topic, family in families.items()}
    aggregate: dict[tuple[str, Any], int] = {}
    counting = Counting(expect)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        # Partitions named, not read from the consumer's metadata: Apache Kafka answers its first
        # metadata request (for no topic in particular) without any topic.
        consumer.assign([TopicPartition(topic, partition) for topic in families for partition in range(partitions)])
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            if batch:
                counting.first()
            for tp, records in batch.items():
                validate_one, validate_many, key_field = one[tp.topic], many[tp.topic], key_fields[tp.topic]
                for record in records:
                    value = record.value or b""
                    events = validate_many.validate_json(value) if value[:1] == b"[" else [
                        validate_one.validate_json(value)]
                    for event in events:
                        slot = (tp.topic, getattr(event, key_field))
                        aggregate[slot] = aggregate.get(slot, 0) + 1
                    if counting.add(len(events)):
                        return True
        return False
    finally:
        await consumer.stop()


def faust_agents(bootstrap: str, expect: int, timeout_s: float, app_id: str, group_timeouts: tuple[float, ...]) -> bool:
    """A bare faust app counting every record of the four topics; True when it counted ``expect`` in time."""
    import faust

    rebalance_s, session_s, heartbeat_s = group_timeouts
    counting = Counting(expect)
    with tempfile.TemporaryDirectory(prefix="corridor-bench-faust-") as datadir:
        app = faust.App(
            app_id,
            broker=[f"kafka://{host}" for host in bootstrap.split(",")],
            store="memory://",
            datadir=datadir,
            web_enabled=False,
            topic_disable_leader=True,
            consumer_auto_offset_reset="earliest",
            broker_rebalance_timeout=rebalance_s,
            broker_session_timeout=session_s,
            broker_heartbeat_interval=heartbeat_s,
        )

        for family in FAMILIES.values():
            topic = app.topic(family.topic, key_serializer="raw", value_serializer="raw")
            app.agent(topic, name=f"bench.count.{family.name}")(_counter(counting))

        @app.timer(timeout_s, on_leader=False)
        async def give_up() -> None:
            if counting.finished is None:
                emit({"error": f"counted {counting.counted} of {expect} events in {timeout_s:g}s"})
                os.kill(os.getpid(), signal.SIGTERM)

        worker = faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False, override_logging=False)
        worker.spinner = None
        with contextlib.suppress(SystemExit):  # how faust's worker ends
            worker.execute_from_commandline()
    return counting.finished is not None


def _counter(counting: Counting) -> Callable[[Any], Coroutine[Any, Any, None]]:
    async def count(stream: Any) -> None:
        async for _value in stream:
            counting.first()
            if counting.add(1):
                # faust stops cleanly on SIGTERM (its own handler): that ends the process.
                os.kill(os.getpid(), signal.SIGTERM)

    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.bench.baselines", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("aiokafka", "faust"))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--expect", type=int, required=True, help="events to count before stopping")
    parser.add_argument("--partitions", type=int, default=4, help="aiokafka: partitions of each family topic")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for them")
    parser.add_argument("--app-id", default="corridor-bench-faust", help="faust: app id and consumer group")
    parser.add_argument("--group-timeouts", default="3,6,1",
                        help="faust: rebalance, session and heartbeat seconds of the consumer group")
    args = parser.parse_args(argv)
    if args.kind == "aiokafka":
        done = asyncio.run(aiokafka_loop(args.bootstrap, args.partitions, args.expect, args.timeout))
        if not done:
            emit({"error": f"fewer than {args.expect} events arrived in {args.timeout:g}s"})
    else:
        timeouts = tuple(float(part) for part in args.group_timeouts.split(","))
        done = faust_agents(args.bootstrap, args.expect, args.timeout, args.app_id, timeouts)
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
