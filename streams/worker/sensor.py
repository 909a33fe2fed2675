"""A faust sensor that counts what the worker's metrics report about the group and its producer."""

from __future__ import annotations

import time
from typing import Any

from faust import Sensor
from faust.types import AppT, ConsumerT, ProducerT

from streams.worker.metrics import WorkerHealth


class WorkerSensor(Sensor):
    """Rebalances, commit latency and send errors (by topic), into :class:`WorkerHealth` (exported at scrape)."""

    def __init__(self, health: WorkerHealth, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.health = health

    def on_rebalance_start(self, app: AppT) -> dict[str, Any]:
        self.health.rebalances += 1
        return {}

    def on_commit_initiated(self, consumer: ConsumerT) -> float:
        return time.monotonic()

    def on_commit_completed(self, consumer: ConsumerT, state: Any) -> None:
        if isinstance(state, float):
            self.health.commit_latency.observe(round((time.monotonic() - state) * 1000))

    def on_send_initiated(self, producer: ProducerT, topic: str, message: Any, keysize: int, valsize: int) -> str:
        return topic  # the state faust hands to on_send_error: which topic a failed record was for

    def on_send_error(self, producer: ProducerT, exc: BaseException, state: Any) -> None:
        self.health.send_errors[state if isinstance(state, str) else "unknown"] += 1
