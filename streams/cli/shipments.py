"""``corridor shipments overdue``: the overdue shipments the workers hold, gathered into one list.

Each worker lists the overdue shipments of the partitions it owns at ``/shipments/overdue``
(streams/core/journeys.py ``overdue_report``). The workers are asked at once, each within the
timeout; their lists are merged and sorted by planned arrival (the latest shipment first, at
any common instant). A partition that moves between two workers while they are asked can be
listed by both: a shipment then appears once, as the worker that answered last lists it. A
worker that cannot be read is named on stderr with the reason, and the command exits 1 after
printing what the others listed.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import click
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from streams.cli.base import cli, local_url, setup
from streams.core.journeys import OVERDUE_PATH

COLUMNS = ("shipment", "route", "mode", "last milestone", "at", "planned arrival (UTC)", "late")
_NO_VALUE = "–"
_UNITS = (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1))


class OverdueShipment(BaseModel):
    """One entry of a worker's list; fields a newer worker adds are kept and passed on."""

    model_config = ConfigDict(extra="allow", frozen=True)

    shipment_id: str
    corridor: str | None = None
    route: str
    mode: str | None = None
    last_milestone: str | None = None
    last_location: str | None = None
    last_event_time: AwareDatetime | None = None
    planned_arrival: AwareDatetime
    late_seconds: float
    partition: int | None = None


class OverdueList(BaseModel):
    """What ``/shipments/overdue`` answers."""

    worker: str
    now: float  #: the worker's clock when it answered (epoch seconds)
    total: int  #: overdue shipments the worker holds
    truncated: bool  #: whether it listed fewer than it holds (CORRIDOR_OVERDUE_LIST_LIMIT)
    shipments: list[OverdueShipment]


@dataclass(frozen=True)
class Answer:
    """A worker's list, or why there is none (``error``)."""

    url: str  #: the worker's URL as given
    overdue: OverdueList | None = None
    error: str | None = None


@dataclass(frozen=True)
class Listed:
    """An overdue shipment and the worker that listed it."""

    shipment: OverdueShipment
    worker: str  #: the worker's id, as it names itself
    worker_url: str

    def as_json(self) -> dict[str, Any]:
        return {**self.shipment.model_dump(mode="json"), "worker": self.worker, "worker_url": self.worker_url}


def list_url(worker_url: str) -> str:
    """Where ``worker_url`` (a worker's base URL, or its list's own URL) serves the overdue list."""
    parts = urlsplit(worker_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.BadParameter(f"{worker_url!r}: expected a worker's URL, such as http://worker-0:6066",
                                 param_hint="'--url'")
    path = parts.path.rstrip("/")
    if not path.endswith(OVERDUE_PATH):
        path += OVERDUE_PATH
    return parts._replace(path=path).geturl()


def ask(worker_url: str, timeout_s: float) -> Answer:
    """The overdue list of one worker, read within ``timeout_s``."""
    url = list_url(worker_url)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - an http(s) URL, checked above
            body = response.read()
    except urllib.error.HTTPError as error:
        error.close()
        return Answer(worker_url, error=f"{url}: HTTP {error.code} {error.reason}")
    except OSError as error:  # URLError, a refused or reset connection, a timeout
        return Answer(worker_url, error=f"{url}: unreachable: {getattr(error, 'reason', error)}")
    try:
        document = json.loads(body)
    except ValueError as error:
        return Answer(worker_url, error=f"{url}: the answer is not JSON: {error}")
    try:
        return Answer(worker_url, overdue=OverdueList.model_validate(document))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'the answer'}: {e['msg']}" for e in error.errors())
        return Answer(worker_url, error=f"{url}: not an overdue list: {problems}")


def gather(worker_urls: list[str], timeout_s: float) -> list[Answer]:
    """Every worker's answer, in the order given; the workers are asked at the same time."""
    with ThreadPoolExecutor(max_workers=min(len(worker_urls), 32)) as pool:
        return list(pool.map(lambda url: ask(url, timeout_s), worker_urls))


def merge(answers: list[Answer]) -> list[Listed]:
    """The shipments of every answer, each (shipment id, route) once as the latest answer lists it, sorted
    by planned arrival (the latest shipment first), then shipment id and route."""
    chosen: dict[tuple[str, str], tuple[float, Listed]] = {}
    for answer in answers:
        if answer.overdue is None:
            continue
        for shipment in answer.overdue.shipments:
            key = (shipment.shipment_id, shipment.route)
            earlier = chosen.get(key)
            if earlier is None or answer.overdue.now >= earlier[0]:
                chosen[key] = (answer.overdue.now, Listed(shipment, answer.overdue.worker, answer.url))
    listed = [entry for _, entry in chosen.values()]
    listed.sort(key=lambda e: (e.shipment.planned_arrival, e.shipment.shipment_id, e.shipment.route))
    return listed


def how_late(seconds: float) -> str:
    """A duration in its two largest units, e.g. ``2 d 4 h``, ``5 h 12 min``, ``3 d``, ``40 s``."""
    left = max(int(seconds), 0)
    counts = []
    for unit, size in _UNITS:
        count, left = divmod(left, size)
        counts.append((count, unit))
    first = next((index for index, (count, _) in enumerate(counts) if count), len(counts) - 1)
    return " ".join(f"{count} {unit}" for count, unit in counts[first:first + 2] if count) or "0 s"


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def footer(overdue: OverdueList, worker_url: str) -> str:
    """One line on what a worker holds and listed."""
    line = f"{overdue.worker} at {worker_url}: {overdue.total:,} overdue"
    if overdue.truncated:
        line += f", the latest {len(overdue.shipments):,} listed (CORRIDOR_OVERDUE_LIST_LIMIT)"
    return line


def _print_table(listed: list[Listed], shown: int, answers: list[Answer]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    # Without a terminal (a pipe, a file) rich would wrap the table at 80 columns. What the workers send is
    # shown as it is: no markup, emoji codes or highlighting read into it.
    console = Console(width=None if sys.stdout.isatty() else 160, markup=False, emoji=False, highlight=False)
    if listed:
        title = f"{len(listed):,} overdue shipments" + (f", the latest {shown:,} shown" if shown < len(listed) else "")
        table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD)
        for header in COLUMNS:
            table.add_column(header, justify="right" if header == "late" else "left")
        for entry in listed[:shown]:
            s = entry.shipment
            table.add_row(s.shipment_id, s.route, s.mode or _NO_VALUE, s.last_milestone or _NO_VALUE,
                          s.last_location or _NO_VALUE, _utc(s.planned_arrival), how_late(s.late_seconds))
        console.print(table)
    elif any(answer.overdue is not None for answer in answers):
        console.print("No overdue shipments.")
    for answer in answers:
        if answer.overdue is not None:
            console.print(footer(answer.overdue, answer.url), soft_wrap=True)


@cli.group("shipments")
def shipments_group() -> None:
    """Shipments in flight, as the workers hold them.

    \b
    corridor shipments overdue                          # the local worker
    corridor shipments overdue --url http://worker-0:6066 --url http://worker-1:6066 --json
    """


@shipments_group.command("overdue")
@click.option("--url", "urls", multiple=True, metavar="WORKER_URL",
              help="A worker's web port, e.g. http://worker-0:6066 (repeat for each worker of the group) "
                   "[default: the local worker, http://127.0.0.1:CORRIDOR_WEB_PORT].")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON list of objects, the latest first: each shipment's fields as its worker lists them, "
                   "with `worker` (its id) and `worker_url`.")
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N",
              help="Show only the N latest shipments [default: all the workers list].")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              metavar="SECONDS", help="How long each worker may take to answer.")
def shipments_overdue(urls: tuple[str, ...], as_json: bool, limit: int | None, timeout: float) -> None:
    """List the overdue shipments the workers hold, the latest first.

    A shipment is overdue once its planned arrival plus its mode's tolerance
    (CORRIDOR_PUNCTUALITY_TOLERANCE) has passed and it has not arrived. Asks every worker given
    for the overdue shipments of the partitions it owns (GET /shipments/overdue) and prints
    them as one table, the one longest past its planned arrival first: shipment, route, mode,
    last milestone and where it happened, planned arrival and how late; then one line per
    worker with how many it holds. Give every worker of the group to see them all; a worker
    lists at most CORRIDOR_OVERDUE_LIST_LIMIT (1,000) of its own, the latest ones.

    A worker that cannot be reached, or answers an error or something else than its list, is
    named on stderr with the reason; the others are still printed, and the exit code is 1.
    Exit 0 when every worker answered, 2 for usage errors.

    \b
    corridor shipments overdue
    corridor shipments overdue --url http://worker-0:6066 --url http://worker-1:6066 --limit 20
    corridor shipments overdue --json | jq -r '.[] | [.shipment_id, .route, .planned_arrival] | @tsv'
    """
    settings = setup()
    worker_urls = list(dict.fromkeys(url.rstrip("/") for url in urls)) or [
        local_url(settings.web_host, settings.web_port, "")]
    for worker_url in worker_urls:
        list_url(worker_url)  # a malformed URL is a usage error before anything is asked
    answers = gather(worker_urls, timeout)
    listed = merge(answers)
    shown = len(listed) if limit is None else min(limit, len(listed))
    if as_json:
        click.echo(json.dumps([entry.as_json() for entry in listed[:shown]], indent=2))
        for answer in answers:
            if answer.overdue is not None and answer.overdue.truncated:
                click.echo(footer(answer.overdue, answer.url), err=True)
    else:
        _print_table(listed, shown, answers)
    failed = [answer for answer in answers if answer.error is not None]
    for answer in failed:
        click.echo(f"error: {answer.error}", err=True)
    if failed:
        sys.exit(1)
