"""`corridor worker` with one fault injected, for tests that need a failure at an exact step.

``python -m tests.integration.faults FAULT`` runs the worker with FAULT applied:

- ``hold-changelog``: the broker never confirms a changelog record (the send is accepted
  and its delivery never reported), as when a changelog partition's leader is unavailable.
- ``drop-fetched``: records at offsets 20-59 of every family partition are dropped the first
  time they are fetched, as the rest of a fetch that a rebalance overtook is dropped.
- ``slow-restore``: restoring the assigned partitions' state takes CORRIDOR_TEST_RESTORE_DELAY_S
  seconds (default 8) longer, as a long changelog would.
"""

from __future__ import annotations

import asyncio
import os
import sys
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


FAULTS = {"hold-changelog": hold_changelog, "drop-fetched": drop_fetched, "slow-restore": slow_restore}

if __name__ == "__main__":
    FAULTS[sys.argv[1]]()
    from streams.cli import main

    sys.argv = ["corridor", "worker"]
    main()
