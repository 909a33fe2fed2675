"""The series a consumer group of workers shows Prometheus over a rolling restart, counted.

:func:`rolling_restart` runs two workers of one group on a broker with traffic flowing, scrapes
both /metrics endpoints over and over as Prometheus would (each worker's samples under its own
``instance``: its web port, kept across its restarts), restarts worker A, waits until the group
settled and every moved series showed both its ends, does the same with worker B, and counts the
distinct series (metric name and labels, ``instance`` included) seen over the whole run against
the most seen at any one moment. docs/metrics.md ("Series churn") has the figures.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from schemas.families import FAMILY_NAMES
from streams.process import parse_metrics
from streams.settings import Settings
from tests.integration.workers import (
    WorkerProcess,
    drained,
    expected_received,
    produce,
    settled,
    wait_for,
    worker_for,
)
from tests.replay import Record, ReplayData

#: A series as Prometheus keys it: the scraped instance, the metric name and its labels.
SeriesId = tuple[str, str, tuple[tuple[str, str], ...]]

#: Longer than the workers' holds (two scrape intervals of a second) and a scrape: this long after a
#: move every series that began or ended at it was shown to its end.
SETTLED_S = 4
SCRAPE_EVERY_S = 0.5
#: Events published per second while the workers run (spread over every partition).
EVENTS_PER_S = 400


@dataclass
class Tally:
    """Series seen over a run: the distinct ones, and the most at one moment."""

    #: Every series seen, with the phase it was first seen in.
    first_seen: dict[SeriesId, str] = field(default_factory=dict)
    most_at_once: int = 0
    most_state_at_once: int = 0

    def add(self, phase: str, moment: set[SeriesId]) -> None:
        for series in moment:
            self.first_seen.setdefault(series, phase)
        self.most_at_once = max(self.most_at_once, len(moment))
        self.most_state_at_once = max(self.most_state_at_once, len(state_derived(moment)))

    def new_in(self, phase: str) -> set[SeriesId]:
        """State-derived series first seen in ``phase``."""
        return state_derived(s for s, p in self.first_seen.items() if p == phase)


def ownerships(series: Iterable[SeriesId]) -> int:
    """The (instance, stream, partition, owner) the series belong to: periods of ownership shown."""
    return len({(s[0], *(v for label, v in s[2] if label in ("stream", "partition", "owner")))
                for s in series if s[1] == "corridor_events_accepted_total"})


def state_derived(series: Iterable[SeriesId]) -> set[SeriesId]:
    """The series computed from partition state (they carry ``owner``)."""
    return {s for s in series if any(label == "owner" for label, _ in s[2])}


def series_of(worker: WorkerProcess, name: str) -> set[SeriesId]:
    """The series worker ``name`` shows now (none while it is down)."""
    text = worker.metrics_text() if worker.alive() else None
    if text is None:
        return set()
    return {(name, s.name, tuple(sorted(s.labels.items()))) for s in parse_metrics(text)}


@dataclass
class ChurnReport:
    """What :func:`rolling_restart` counted (state-derived series unless said)."""

    partitions: int  #: source partitions of all families together
    steady: int  #: state-derived series once the group settled, before the restarts
    steady_all: int  #: every series then, the workers' own included
    after_restart_a: int  #: state-derived series first seen while A restarted and the group settled
    after_restart_b: int  #: the same for B
    periods_a: int  #: periods of ownership (a partition's series on one worker) those series began
    periods_b: int
    over_run: int  #: distinct state-derived series over the whole run
    over_run_all: int  #: distinct series over the whole run, the workers' own included
    most_at_once: int  #: the most state-derived series at one moment

    @property
    def per_rolling_restart(self) -> int:
        return self.after_restart_a + self.after_restart_b

    def lines(self) -> list[str]:
        return [
            f"partitions {self.partitions}; state-derived series: steady {self.steady}, most at once "
            f"{self.most_at_once}, new in restart A {self.after_restart_a}, new in restart B {self.after_restart_b}, "
            f"per rolling restart {self.per_rolling_restart}, over the run {self.over_run}; periods of ownership "
            f"begun in restart A {self.periods_a}, in restart B {self.periods_b}",
            f"every series: steady {self.steady_all}, over the run {self.over_run_all}",
        ]


class Traffic:
    """Records of every family published in the background, about EVENTS_PER_S events a second."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.records: list[Record] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="churn-traffic", daemon=True)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)

    def _run(self) -> None:
        chunk = 0
        while not self.stopping.is_set():
            data = ReplayData(time.time(), seed=1_000 + chunk)
            data._ids = chunk * 1_000_000  # event ids distinct from every other chunk's
            records = data.build(EVENTS_PER_S)
            asyncio.run(produce(self.bootstrap, records))
            self.records += records
            chunk += 1
            self.stopping.wait(1.0)


#: Longer than a worker takes to restart, so that a named worker (static membership) is back before
#: the group gives its partitions to another.
NAMED_SESSION_TIMEOUT_S = 30


def rolling_restart(broker, tmp_path: Path, app_id: str, *, named: bool) -> ChurnReport:
    """Two workers with traffic flowing, each restarted in turn (SIGTERM, then started on its port again);
    ``named``: each with its ``CORRIDOR_WORKER_ID``."""
    def env(name: str) -> dict[str, str]:
        if not named:
            return {}
        return {"CORRIDOR_WORKER_ID": f"worker-{name}", "CORRIDOR_SESSION_TIMEOUT_S": str(NAMED_SESSION_TIMEOUT_S)}

    workers = {name: worker_for(broker, tmp_path, name, app_id=app_id, env=env(name)) for name in ("a", "b")}
    group = list(workers.values())
    tally = Tally()

    def scrape(phase: str) -> None:
        tally.add(phase, set().union(*(series_of(w, n) for n, w in workers.items())))

    def watch(phase: str, until, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g}s waiting for {message}")
            scrape(phase)
            time.sleep(SCRAPE_EVERY_S)

    def hold(phase: str, seconds: float) -> None:
        end = time.monotonic() + seconds
        watch(phase, lambda: time.monotonic() >= end, seconds + 1, "the holds")

    try:
        with Traffic(broker.bootstrap) as traffic:
            for worker in group:
                worker.start()
            watch("start", lambda: settled(group), 120, "the group to settle")
            hold("start", SETTLED_S)
            moment = set().union(*(series_of(w, n) for n, w in workers.items()))
            steady, steady_all = len(state_derived(moment)), len(moment)
            tally.add("start", moment)
            for name, worker in workers.items():
                phase = f"restart-{name}"
                assert worker.stop() == 0, worker.log_tail()
                watch(phase, lambda w=worker: not w.alive(), 60, f"worker {name} to stop")
                worker.start()
                watch(phase, lambda: settled(group), 120, f"the group to settle after restarting {name}")
                hold(phase, SETTLED_S)
            published = list(traffic.records)
        wait_for(lambda: drained(group, expected_received(published)), timeout=120,
                 message="the workers to drain the traffic")
        scrape("end")
    finally:
        for worker in group:
            worker.stop()
    seen = tally.first_seen
    return ChurnReport(
        partitions=Settings().topic_partitions * len(FAMILY_NAMES),
        steady=steady,
        steady_all=steady_all,
        after_restart_a=len(tally.new_in("restart-a")),
        after_restart_b=len(tally.new_in("restart-b")),
        periods_a=ownerships(tally.new_in("restart-a")),
        periods_b=ownerships(tally.new_in("restart-b")),
        over_run=len(state_derived(seen)),
        over_run_all=len(seen),
        most_at_once=tally.most_state_at_once,
    )
