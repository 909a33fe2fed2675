"""`corridor worker` with one fault injected, for tests that need a failure at an exact step.

``python -m tests.integration.faults FAULT`` runs the worker with FAULT applied:

- ``hold-changelog``: the broker never confirms a changelog record (the send is accepted
  and its delivery never reported), as when a changelog partition's leader is unavailable.
- ``drop-fetched``: records at offsets 20-59 of every family partition are dropped the first
  time they are fetched, as the rest of a fetch that a rebalance overtook is dropped.
- ``slow-restore``: restoring the assigned partitions' state takes CORRIDOR_TEST_RESTORE_DELAY_S
  seconds (default 8) longer, as a long changelog would.
- ``restore-overtaken``: the recovery of the worker's first assignment ends (the tables' recovery
  callbacks run) only once a newer assignment reached the consumer (at most
  CORRIDOR_TEST_OVERTAKEN_TIMEOUT_S seconds later, default 60), as when a rebalance overtakes a long
  restore.
- ``slow-apply``: the family records of each fetch are handed to the worker one at a time, each
  CORRIDOR_TEST_APPLY_DELAY_S seconds (default 0.2) after the previous one, as a worker short of CPU
  applies them: at most 1/delay records a second, whatever arrives.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from faust.transport.drivers import aiokafka as faust_kafka


def hold_changelog() -> None:
    send = faust_kafka.Producer.send

    async def held(self: Any, topic: str, *args: Any, **kwargs: Any) -> Any:
        if topic.endswith("-changelog"):
            return asyncio.get_running_loop().create_future()
        return await send(self, topic, *args, **kwargs)

    faust_kafka.Producer.send = held  # type: ignore[method-assign]


def drop_fetched() -> None:
    from streams.worker.faust_compat import Consumer

    wait_next_records = Consumer._wait_next_records
    fetched: set[tuple[Any, int]] = set()

    async def dropping(self: Any, timeout: float) -> Any:
        records, active = await wait_next_records(self, timeout)
        for tp, batch in (records or {}).items():
            if tp.topic in self.batch_handlers:
                dropped = {(tp, r.offset) for r in batch if 20 <= r.offset < 60} - fetched
                fetched.update(dropped)
                records[tp] = [r for r in batch if (tp, r.offset) not in dropped]
        return records, active

    Consumer._wait_next_records = dropping  # type: ignore[method-assign]


def slow_restore() -> None:
    from streams.worker.app import CorridorApp

    restore = CorridorApp._restore_assigned
    delay = float(os.environ.get("CORRIDOR_TEST_RESTORE_DELAY_S", "8"))

    async def slow(self: Any) -> None:
        await asyncio.sleep(delay)
        await restore(self)

    CorridorApp._restore_assigned = slow  # type: ignore[method-assign]


def restore_overtaken() -> None:
    from streams.worker.app import CorridorApp

    restore = CorridorApp._restore_assigned
    timeout = float(os.environ.get("CORRIDOR_TEST_OVERTAKEN_TIMEOUT_S", "60"))
    first: list[int] = []  # the consumer generation of the worker's first assignment

    async def overtaken(self: Any) -> None:
        app = self.app
        if not first:
            first.append(app.consumer_generation_id)
        deadline = time.monotonic() + timeout
        while app.consumer_generation_id == first[0] and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await restore(self)

    CorridorApp._restore_assigned = overtaken  # type: ignore[method-assign]


def slow_apply() -> None:
    from streams.worker.faust_compat import Consumer

    wait_next_records = Consumer._wait_next_records
    delay = float(os.environ.get("CORRIDOR_TEST_APPLY_DELAY_S", "0.2"))
    fetched: dict[Any, list[Any]] = {}  # family records fetched and not yet handed over, by partition

    async def one_at_a_time(self: Any, timeout: float) -> Any:
        waiting = [tp for tp, batch in fetched.items() if batch]
        if not waiting:
            records, active = await wait_next_records(self, timeout)
            passed = {}
            for tp, batch in (records or {}).items():
                if tp.topic in self.batch_handlers:
                    fetched.setdefault(tp, []).extend(batch)
                else:
                    passed[tp] = batch  # changelogs while they recover: as fetched
            if passed or not any(fetched.values()):
                return passed, active
            waiting = [tp for tp, batch in fetched.items() if batch]
        await asyncio.sleep(delay)
        tp = waiting[0]
        return {tp: [fetched[tp].pop(0)]}, None

    Consumer._wait_next_records = one_at_a_time  # type: ignore[method-assign]


FAULTS = {"hold-changelog": hold_changelog, "drop-fetched": drop_fetched, "slow-restore": slow_restore,
          "restore-overtaken": restore_overtaken, "slow-apply": slow_apply}

if __name__ == "__main__":
    FAULTS[sys.argv[1]]()
    from streams.cli import main

    sys.argv = ["corridor", "worker"]
    main()
