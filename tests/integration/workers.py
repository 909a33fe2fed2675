"""Running `corridor worker` processes against the test broker and reading their /metrics."""

from __future__ import annotations

import asyncio
import signal
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from schemas.families import FAMILIES, FAMILY_NAMES
from streams import process
from streams.process import parse_metrics
from streams.settings import Settings
from tests.replay import WINDOWS, Record, ReplayData

Samples = dict[tuple[str, tuple], float]

RECEIVED = "corridor_events_received_total"
#: Short group timeouts so a restarted or surviving worker takes over quickly.
GROUP_ENV = {
    "CORRIDOR_SESSION_TIMEOUT_S": "6",
    "CORRIDOR_HEARTBEAT_INTERVAL_S": "1",
    "CORRIDOR_REBALANCE_TIMEOUT_S": "3",
}


def expected_received(records: list[Record]) -> Counter:
    """Events per family the records carry (a record that cannot be parsed counts once)."""
    counts: Counter = Counter()
    for record in records:
        counts[record.family] += len(record.events) or 1
    return counts


def received_by_stream(samples: Samples) -> dict[str, float]:
    return {family: samples.get((RECEIVED, (("stream", family),)), 0.0) for family in FAMILY_NAMES}


def parse_samples(text: str) -> Samples:
    """The samples of a /metrics text, summed over the ``partition`` and ``owner`` of state-derived series
    (the reference model knows totals, not which worker owned a partition when)."""
    samples: Samples = {}
    for s in parse_metrics(text):
        labels = s.labels
        if "owner" in labels:
            labels = {k: v for k, v in labels.items() if k not in ("owner", "partition")}
        key = (s.name, tuple(sorted(labels.items())))
        samples[key] = samples.get(key, 0.0) + s.value
    return samples


@dataclass
class WorkerProcess(process.WorkerProcess):
    """One `corridor worker` subprocess with its own web port and state directory, in the test run's session
    (Ctrl-C on the run stops it too)."""

    app_id: str = "corridor-test"
    store: str | None = "memory://"
    scrape_interval_s: float | None = 1  # as the tests' Prometheus scrapes
    new_session: bool = False
    stop_timeout_s: float = 60

    def scrape(self) -> Samples | None:
        """The worker's samples (summed over partitions and owners), or None while it is not serving them."""
        text = self.metrics_text()
        return None if text is None else parse_samples(text)

    def probe(self, path: str) -> int | None:
        """The HTTP status of GET ``path`` (e.g. /readyz), or None when nothing answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def by_partition(text: str) -> Samples:
    """The samples of a /metrics text keyed without their ``owner`` label: one key per partition's series."""
    return {
        (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "owner"))): s.value
        for s in parse_metrics(text)
        if "owner" in s.labels
    }


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def summed(scrapes: list[Samples]) -> Samples:
    """Samples of several workers added up (each key is exported by one owner)."""
    out: Samples = {}
    for samples in scrapes:
        for key, value in samples.items():
            if key[0] == "corridor_last_event_timestamp_seconds":
                out[key] = max(out.get(key, value), value)
            elif key[0] == "corridor_consumer_lag" or key[0].startswith("corridor_event_delay_seconds"):
                continue
            else:
                out[key] = out.get(key, 0.0) + value
    return out


def wait_for(predicate, timeout: float, interval: float = 0.5, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {message}")
        time.sleep(interval)


async def produce(bootstrap: str, records: list[Record], acks: int | str = 1,
                  idempotent: bool = False) -> list[tuple[Record, int, int]]:
    """Write every record as it is with a plain producer; returns (record, partition, offset).

    ``acks="all"`` waits until every in-sync replica holds a record; ``idempotent`` (which implies it)
    lets the broker drop a batch the producer resends after a lost answer, so a retry across a leader
    change neither doubles nor reorders records.
    """
    options: dict[str, object] = {"enable_idempotence": True} if idempotent else {"acks": acks}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, max_batch_size=256 * 1024, **options)
    await producer.start()
    try:
        futures = [
            await producer.send(FAMILIES[r.family].topic, r.value, key=r.key, timestamp_ms=r.timestamp_ms)
            for r in records
        ]
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(r, m.partition, m.offset) for r, m in zip(records, metadata)]


def window_safe_now(*workers: WorkerProcess) -> tuple[float, Samples]:
    """The workers' summed samples, scraped while no window bucket boundary passed, and their time."""
    while True:
        before = time.time()
        scrapes = [worker.scrape() for worker in workers]
        after = time.time()
        if all(s is not None for s in scrapes) and all(before // b == after // b for _, _, b in WINDOWS):
            return before, scrapes[0] if len(scrapes) == 1 else summed(scrapes)
        time.sleep(0.2)


def replay(broker, n_events: int, seed: int):
    records = ReplayData(time.time(), seed=seed).build(n_events)
    asyncio.run(produce(broker.bootstrap, records))
    return records


def worker_for(broker, tmp_path, name: str, store: str = "memory://", app_id: str = "corridor-durability",
               fault: str | None = None, env: dict[str, str] | None = None):
    """A worker of the test's group; with ``fault``, one of tests/integration/faults.py injected; ``env``
    adds settings (``CORRIDOR_*``) to the group's short timeouts."""
    worker = WorkerProcess(
        broker.bootstrap, tmp_path / f"state-{name}", tmp_path / f"{name}.log",
        app_id=app_id, store=store, env={**GROUP_ENV, **(env or {})},
    )
    if fault is not None:
        worker.args = ("-m", "tests.integration.faults", fault)
    return worker


def drain(worker: WorkerProcess, want: Counter, message: str, timeout: float = 120) -> tuple[float, Samples]:
    """Wait until the worker received every event; its samples and their time; then stop it."""
    try:
        wait_for(lambda: drained([worker], want), timeout=timeout, message=message)
        return window_safe_now(worker)
    finally:
        worker.stop()


def drained(workers: list[WorkerProcess], want: Counter):
    """Summed samples once the live workers together received every event, else None."""
    scrapes = [w.scrape() for w in workers if w.alive()]
    if not scrapes or any(s is None for s in scrapes):
        return None
    samples = summed(scrapes)
    received = received_by_stream(samples)
    return samples if all(received[family] == want.get(family, 0) for family in received) else None


def owned_partitions(worker: WorkerProcess) -> set[tuple[str, str]]:
    """(stream, partition) of each partition the worker owns (each has a checkpoint age)."""
    text = worker.metrics_text() if worker.alive() else None
    if text is None:
        return set()
    return {(sample.labels["stream"], sample.labels["partition"])
            for sample in parse_metrics(text) if sample.name == "corridor_checkpoint_age_seconds"}


def settled(workers: list[WorkerProcess]) -> bool:
    """Whether every partition is owned by exactly one of the workers, and each owns some: no
    member is still to join or to be found dead, so no partition moves any more."""
    owned = [owned_partitions(worker) for worker in workers]
    every = {(family, str(p)) for family in FAMILY_NAMES for p in range(Settings().topic_partitions)}
    return all(owned) and sum(map(len, owned)) == len(every) and set().union(*owned) == every
