"""Times the shipments processor with 10 and with 1,000 known routes, without Kafka.

    .venv/bin/python scripts/profile_routes.py            # events/s with 10 and 1,000 routes, twice each

The same simulated shipments (scripts/profile_processor.py) are spread over N routes of a
registry written for the run, and applied in envelopes of 500 with
``FamilyProcessor.process_many`` to a fresh partition state; each figure is the best of five
runs. More routes mean more label sets to sum per batch and more window series per state.
"""

from __future__ import annotations

import itertools
import json
import string
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from profile_processor import simulated_events  # noqa: E402

from streams.core.processor import FamilyProcessor  # noqa: E402
from streams.core.registry import Registry  # noqa: E402
from streams.settings import Settings  # noqa: E402

EVENTS = 100_000
ENVELOPE = 500


def events_per_second(events: list[dict[str, Any]], n_routes: int, workdir: Path) -> float:
    codes = ("".join(letters) for letters in itertools.product(string.ascii_uppercase, repeat=3))
    routes = [f"CN{code}-SGSIN" for code in itertools.islice(codes, n_routes)]
    registry = json.loads((ROOT / "streams" / "core" / "registry.json").read_text())
    registry["shipment_routes"] = {route: {"corridor": "ILSTC", "description": route} for route in routes}
    path = workdir / f"registry-{n_routes}.json"
    path.write_text(json.dumps(registry))
    processor = FamilyProcessor("shipments", Settings(registry_file=path), Registry.load(path))
    spread = [{**event, "route": routes[i % n_routes], "origin": routes[i % n_routes][:5]}
              for i, event in enumerate(events)]
    consumed_at = max(datetime.fromisoformat(event["event_time"]).timestamp() for event in spread) + 60
    records = [(offset, consumed_at, orjson.dumps(spread[start:start + ENVELOPE]))
               for offset, start in enumerate(range(0, len(spread), ENVELOPE))]
    best = float("inf")
    for _ in range(5):
        state = processor.new_state()
        started = time.perf_counter()
        processor.process_many(state, 0, records)
        best = min(best, time.perf_counter() - started)
        accepted = state.counters["events_accepted"][()]
        if accepted != len(spread):
            raise SystemExit(f"{accepted} of {len(spread)} events accepted")
    return len(spread) / best


def main() -> None:
    events = simulated_events(EVENTS)["shipments"]
    with tempfile.TemporaryDirectory() as workdir:
        for n_routes in (10, 1000, 10, 1000):
            print(f"{n_routes:5} routes  {events_per_second(events, n_routes, Path(workdir)):10,.0f} events/s")


if __name__ == "__main__":
    main()
