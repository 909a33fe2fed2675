"""``corridor shipments overdue`` against stand-in workers: the table, the JSON list, merging, errors, help."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from streams.cli import cli
from streams.cli.shipments import how_late
from streams.core.journeys import OVERDUE_PATH, overdue_report
from streams.core.processor import FamilyProcessor
from streams.core.registry import Registry
from streams.process import free_port
from streams.settings import Settings, get_settings
from tests.fake_http import Answer, FakeHTTPService

NOW = datetime(2026, 12, 8, 0, 0, tzinfo=UTC).timestamp()
DAY, HOUR = 86400, 3600


class FakeWorker(FakeHTTPService):
    """A worker's web port: ``/shipments/overdue`` answers ``body`` (a document, or bytes as they are) with
    ``status``."""

    def __init__(self, body: Any, status: int = 200) -> None:
        self.body, self.status = body, status
        self.requests, self.violations, self._lock = [], [], threading.Lock()

    def _route(self, request: BaseHTTPRequestHandler, path: str, raw: bytes) -> Any:
        if path != OVERDUE_PATH:
            raise Answer(404, {"error": "not found"})
        if self.status != 200:
            raise Answer(self.status, self.body)
        return self.body


def entry(shipment_id: str, planned_days_ago: float, now: float = NOW, route: str = "CNCKG-CNQZH-SGSIN",
          partition: int = 0, **fields: Any) -> dict[str, Any]:
    """One shipment as a worker lists it at ``now``."""
    planned = NOW - planned_days_ago * DAY
    return {
        "shipment_id": shipment_id, "corridor": "ILSTC", "route": route, "mode": "rail_sea",
        "last_milestone": "departed", "last_location": "CNQZH",
        "last_event_time": datetime.fromtimestamp(planned - 3 * DAY, UTC).isoformat().replace("+00:00", "Z"),
        "planned_arrival": datetime.fromtimestamp(planned, UTC).isoformat().replace("+00:00", "Z"),
        "late_seconds": now - planned, "partition": partition, **fields,
    }


def answer(worker: str, *shipments: dict[str, Any], now: float = NOW, total: int | None = None) -> dict[str, Any]:
    listed = len(shipments)
    total = listed if total is None else total
    return {"worker": worker, "now": now, "total": total, "truncated": total > listed, "shipments": list(shipments)}


@contextmanager
def serving(*fakes: FakeWorker) -> Iterator[list[str]]:
    """The fake workers' URLs while they serve."""
    with ExitStack() as stack:
        yield [stack.enter_context(fake.serving()).url for fake in fakes]


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def overdue(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env).invoke(cli, ["shipments", "overdue", *args])


def lines(output: str) -> list[str]:
    """The lines printed, without the blanks rich pads a table's title with."""
    return [line.rstrip() for line in output.splitlines()]


def rows(output: str) -> list[list[str]]:
    """The words of each row of the table printed (between the rule under its header and the blank after)."""
    printed = lines(output)
    start = next(index for index, line in enumerate(printed) if line.strip().startswith("─")) + 1
    body = printed[start:printed.index("", start)] if "" in printed[start:] else printed[start:]
    return [line.split() for line in body]


def urls_args(urls: list[str]) -> list[str]:
    return [arg for url in urls for arg in ("--url", url)]


def test_the_table_lists_the_latest_first_with_how_late_and_a_line_per_worker():
    worker = FakeWorker(answer("corridor-worker-0", entry("SHP-2", 1 + 1 / 6), entry("SHP-1", 5.5, route="CNCKG-SGSIN",
                                                                                      last_location=None)))
    with serving(worker) as urls:
        result = overdue(*urls_args(urls))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    printed = lines(result.stdout)
    assert printed[0] == "2 overdue shipments"
    for header in ("shipment", "route", "mode", "last milestone", "at", "planned arrival (UTC)", "late"):
        assert header in printed[2]
    first, second = rows(result.stdout)
    assert first == ["SHP-1", "CNCKG-SGSIN", "rail_sea", "departed", "–", "2026-12-02", "12:00", "5", "d", "12", "h"]
    assert second == ["SHP-2", "CNCKG-CNQZH-SGSIN", "rail_sea", "departed", "CNQZH", "2026-12-06", "20:00",
                      "1", "d", "4", "h"]
    assert printed[-1] == f"corridor-worker-0 at {urls[0]}: 2 overdue"
    assert worker.requests == [("GET", OVERDUE_PATH)]


def test_json_is_one_list_of_every_shipment_with_the_worker_it_came_from():
    with serving(FakeWorker(answer("w-0", entry("SHP-1", 2, partition=3)))) as urls:
        result = overdue("--json", "--url", urls[0] + "/")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert listed == [{**entry("SHP-1", 2, partition=3), "worker": "w-0", "worker_url": urls[0]}]


def test_the_lists_of_two_workers_merge_into_one_sorted_by_planned_arrival():
    first = FakeWorker(answer("w-0", entry("A", 4), entry("C", 1)))
    second = FakeWorker(answer("w-1", entry("B", 3, partition=1), entry("D", 0.5, partition=1), now=NOW + 2))
    with serving(first, second) as urls:
        result = overdue("--json", *urls_args(urls))
        table = overdue(*urls_args(urls))
    assert result.exit_code == 0, result.output
    assert [(s["shipment_id"], s["worker"]) for s in json.loads(result.stdout)] == [
        ("A", "w-0"), ("B", "w-1"), ("C", "w-0"), ("D", "w-1")]
    assert table.exit_code == 0
    assert lines(table.stdout)[0] == "4 overdue shipments"
    assert lines(table.stdout)[-2:] == [f"w-0 at {urls[0]}: 2 overdue", f"w-1 at {urls[1]}: 2 overdue"]


def test_a_shipment_two_workers_list_appears_once_as_the_later_answer_has_it():
    # The partition moved from w-0 to w-1 between the two answers; w-1 answered later.
    later = FakeWorker(answer("w-1", entry("MOVED", 2, partition=2, late_seconds=2 * DAY + 5), now=NOW + 5))
    earlier = FakeWorker(answer("w-0", entry("MOVED", 2, partition=2), entry("MOVED", 1, route="CNCKG-VNHAN")))
    with serving(later, earlier) as urls:
        result = overdue("--json", *urls_args(urls))
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    # The same id on another route is another shipment.
    assert [(s["shipment_id"], s["route"], s["worker"]) for s in listed] == [
        ("MOVED", "CNCKG-CNQZH-SGSIN", "w-1"), ("MOVED", "CNCKG-VNHAN", "w-0")]
    assert listed[0]["late_seconds"] == 2 * DAY + 5


def test_an_unreachable_worker_is_named_and_the_others_still_printed_with_exit_1():
    nobody = f"http://127.0.0.1:{free_port()}"
    with serving(FakeWorker(answer("w-0", entry("SHP-1", 2)))) as urls:
        result = overdue("--json", *urls_args([nobody, *urls]))
        table = overdue(*urls_args([nobody, *urls]))
    assert result.exit_code == 1
    assert [s["shipment_id"] for s in json.loads(result.stdout)] == ["SHP-1"]
    assert f"error: {nobody}{OVERDUE_PATH}: unreachable: " in result.stderr
    assert "refused" in result.stderr.lower()
    assert table.exit_code == 1
    assert "SHP-1" in table.stdout and nobody not in table.stdout
    assert nobody in table.stderr


@pytest.mark.parametrize(("fake", "reason"), [
    (FakeWorker({"error": "restoring"}, status=503), "HTTP 503 Service Unavailable"),
    (FakeWorker(b"<html>not a worker</html>"), "the answer is not JSON: "),
    (FakeWorker({"shipments": "none"}), "not an overdue list: worker: Field required"),
    (FakeWorker(answer("w-9", {"shipment_id": "X", "route": "R", "planned_arrival": "2026-12-01T00:00:00",
                               "late_seconds": 1.0})),
     "not an overdue list: shipments.0.planned_arrival: Input should have timezone info"),
], ids=["http-503", "not-json", "not-a-list", "naive-time"])
def test_a_worker_that_answers_something_else_than_its_list_is_an_error(fake: FakeWorker, reason: str):
    with serving(fake, FakeWorker(answer("w-0", entry("SHP-1", 2)))) as urls:
        result = overdue(*urls_args(urls))
    assert result.exit_code == 1
    assert f"error: {urls[0]}{OVERDUE_PATH}: {reason}" in result.stderr
    assert "SHP-1" in result.stdout


def test_a_worker_slower_than_the_timeout_is_an_error():
    # A port that takes connections and never answers: the kernel accepts them into the backlog.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        result = overdue("--timeout", "0.3", "--url", url)
    assert result.exit_code == 1
    assert f"error: {url}{OVERDUE_PATH}: unreachable: timed out" in result.stderr
    assert time.monotonic() - started < 5
    assert result.stdout == ""  # nothing answered: no claim that nothing is overdue


def test_limit_shows_the_latest_and_says_how_many_there_are():
    with serving(FakeWorker(answer("w-0", entry("A", 4), entry("B", 3), entry("C", 2)))) as urls:
        table = overdue("--limit", "2", *urls_args(urls))
        listed = overdue("--limit", "2", "--json", *urls_args(urls))
    assert table.exit_code == 0
    assert lines(table.stdout)[0] == "3 overdue shipments, the latest 2 shown"
    assert [row[0] for row in rows(table.stdout)] == ["A", "B"]
    assert [s["shipment_id"] for s in json.loads(listed.stdout)] == ["A", "B"]


def test_a_worker_that_holds_more_than_it_lists_says_so():
    with serving(FakeWorker(answer("w-0", entry("A", 4), total=1500))) as urls:
        table = overdue(*urls_args(urls))
        listed = overdue("--json", *urls_args(urls))
    note = f"w-0 at {urls[0]}: 1,500 overdue, the latest 1 listed (CORRIDOR_OVERDUE_LIST_LIMIT)"
    assert table.exit_code == listed.exit_code == 0
    assert lines(table.stdout)[-1] == note
    assert listed.stderr.strip() == note


def test_nothing_overdue():
    with serving(FakeWorker(answer("w-0"))) as urls:
        table = overdue(*urls_args(urls))
        listed = overdue("--json", *urls_args(urls))
    assert (table.exit_code, lines(table.stdout)[0]) == (0, "No overdue shipments.")
    assert (listed.exit_code, json.loads(listed.stdout)) == (0, [])


def test_without_url_the_local_worker_on_corridor_web_port_is_asked():
    with serving(FakeWorker(answer("local", entry("SHP-1", 2)))) as urls:
        port = urls[0].rsplit(":", 1)[1]
        result = overdue("--json", env={"CORRIDOR_WEB_PORT": port, "CORRIDOR_WEB_HOST": "0.0.0.0"})
    assert result.exit_code == 0, result.output
    assert [(s["shipment_id"], s["worker_url"]) for s in json.loads(result.stdout)] == [
        ("SHP-1", f"http://127.0.0.1:{port}")]


def test_the_lists_own_url_is_taken_as_well():
    with serving(FakeWorker(answer("w-0", entry("SHP-1", 2)))) as urls:
        result = overdue("--json", "--url", urls[0] + OVERDUE_PATH)
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 1


@pytest.mark.parametrize("url", ["worker-0:6066", "ftp://worker-0/", "http://"])
def test_a_url_that_is_no_worker_url_is_a_usage_error(url: str):
    result = overdue("--url", url)
    assert result.exit_code == 2
    assert "expected a worker's URL, such as http://worker-0:6066" in result.stderr


def test_what_a_worker_sends_is_shown_as_it_is():
    with serving(FakeWorker(answer("w-0", entry("[bold]S:1:", 2)))) as urls:
        result = overdue(*urls_args(urls))
    assert result.exit_code == 0
    assert "[bold]S:1:" in result.stdout


def test_the_list_a_worker_makes_is_read_as_it_is_made():
    """The CLI reads what streams/core/journeys.py's overdue_report writes (the worker's own document)."""
    processor = FamilyProcessor("shipments", Settings(), Registry.load(None))
    state = processor.new_state()
    for number, (milestone, days_ago, planned_days_ago) in enumerate(
            [("departed", 6, 3), ("booked", 5, 2), ("departed", 1, -1)]):
        event = {
            "event_id": f"e{number}", "source": "cq-rail-ops", "shipment_id": f"S{number}",
            "event_time": datetime.fromtimestamp(NOW - days_ago * DAY, UTC).isoformat(),
            "planned_arrival": datetime.fromtimestamp(NOW - planned_days_ago * DAY, UTC).isoformat(),
            "corridor": "ILSTC", "route": "CNCKG-CNQZH-SGSIN", "mode": "rail_sea", "milestone": milestone,
            "teu": 2, "gross_weight_kg": 24000, "origin": "CNCKG", "destination": "SGSIN", "carrier": "CR Express",
        }
        processor.process(state, 1, number, NOW, orjson.dumps(event))
    document = {"worker": "w-0", **overdue_report([(1, state.journeys)], NOW, 1000)}
    with serving(FakeWorker(document)) as urls:
        result = overdue("--json", *urls_args(urls))
        table = overdue(*urls_args(urls))
    assert result.exit_code == 0, result.output
    assert [(s["shipment_id"], s["last_milestone"], s["late_seconds"]) for s in json.loads(result.stdout)] == [
        ("S0", "departed", 3 * DAY), ("S1", "booked", 2 * DAY)]
    assert [row[0] for row in rows(table.stdout)] == ["S0", "S1"]


@pytest.mark.parametrize(("seconds", "shown"), [
    (0, "0 s"), (-3, "0 s"), (40.9, "40 s"), (60, "1 min"), (3700, "1 h 1 min"), (3600, "1 h"),
    (2 * DAY + 4 * HOUR + 59, "2 d 4 h"), (3 * DAY + 30, "3 d"), (45 * DAY, "45 d"),
])
def test_how_late_is_said_in_its_two_largest_units(seconds: float, shown: str):
    assert how_late(seconds) == shown


def test_help_of_the_group_and_the_verb_shows_examples():
    group = CliRunner().invoke(cli, ["shipments", "--help"])
    verb = CliRunner().invoke(cli, ["shipments", "overdue", "--help"])
    assert group.exit_code == verb.exit_code == 0
    assert "overdue" in group.stdout
    assert "corridor shipments overdue --url http://worker-0:6066 --url http://worker-1:6066" in verb.stdout
    for option in ("--url WORKER_URL", "--json", "--limit N", "--timeout SECONDS"):
        assert option in verb.stdout
    assert "CORRIDOR_OVERDUE_LIST_LIMIT" in verb.stdout
