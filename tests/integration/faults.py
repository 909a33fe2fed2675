"""`corridor worker` with one fault injected, for tests that need a failure at an exact step.

``python -m tests.integration.faults FAULT`` runs the worker with FAULT applied:

- ``hold-changelog``: the broker never confirms a changelog record (the send is accepted
  and its delivery never reported), as when a changelog partition's leader is unavailable.
- ``stale-generation``: records at offsets 20-59 of every partition arrive, the first time
  they are fetched, as records of an older consumer generation, as records fetched just
  before a rebalance do. faust's streams skip such records.
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


def stale_generation() -> None:
    to_message = faust_kafka.Consumer._to_message
    fetched: set[tuple[Any, int]] = set()

    def from_older_generation(self: Any, tp: Any, record: Any) -> Any:
        message = to_message(self, tp, record)
        if 20 <= record.offset < 60 and (tp, record.offset) not in fetched:
            fetched.add((tp, record.offset))
            message.generation_id = -1
        return message

    faust_kafka.Consumer._to_message = from_older_generation  # type: ignore[method-assign]


def slow_restore() -> None:
    from streams.worker.app import CorridorApp

    restore = CorridorApp._restore_assigned
    delay = float(os.environ.get("CORRIDOR_TEST_RESTORE_DELAY_S", "8"))

    async def slow(self: Any) -> None:
        await asyncio.sleep(delay)
        await restore(self)

    CorridorApp._restore_assigned = slow  # type: ignore[method-assign]


FAULTS = {"hold-changelog": hold_changelog, "stale-generation": stale_generation, "slow-restore": slow_restore}

if __name__ == "__main__":
    FAULTS[sys.argv[1]]()
    from streams.cli import main

    sys.argv = ["corridor", "worker"]
    main()
