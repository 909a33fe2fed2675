"""`corridor worker` with one fault injected, for tests that need a failure at an exact step.

``python -m tests.integration.faults FAULT`` runs the worker with FAULT applied:

- ``hold-changelog``: the broker never confirms a changelog record (the send is accepted
  and its delivery never reported), as when a changelog partition's leader is unavailable.
"""

from __future__ import annotations

import asyncio
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


FAULTS = {"hold-changelog": hold_changelog}

if __name__ == "__main__":
    FAULTS[sys.argv[1]]()
    from streams.cli import main

    sys.argv = ["corridor", "worker"]
    main()
