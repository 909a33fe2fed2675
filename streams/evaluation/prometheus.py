"""A private, real Prometheus over a TSDB backfilled from history: blocks, recording rules, range queries.

Nothing here scrapes: the TSDB is built with ``promtool tsdb create-blocks-from
openmetrics``, recording rules are backfilled with ``promtool tsdb create-blocks-from
rules`` (one level of rules at a time, since a rule can only read what is already in the
TSDB), and the server is restarted to load new blocks. The server listens on a free
loopback port and keeps its data for as long as it exists (the history is years old).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from streams.evaluation.history import History
from streams.process import ServerProcess, free_port

#: Longest a promtool or Prometheus step may take before it is reported stuck.
TIMEOUT_S = 900
DAY = 86400
#: Most points Prometheus returns per series from one range query.
MAX_POINTS = 11_000


class PrometheusError(RuntimeError):
    """promtool or Prometheus failed; the message carries what it said."""


def _run(command: Sequence[str], what: str, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(  # noqa: S603 - our own argument list, no shell
            list(command), capture_output=True, text=True, timeout=TIMEOUT_S, check=False, cwd=cwd
        )
    except subprocess.TimeoutExpired:
        raise PrometheusError(f"{what}: no answer in {TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise PrometheusError(f"{what} failed ({done.returncode}): {(done.stderr or done.stdout)[-2000:]}")
    return done.stdout


def create_blocks(
    promtool: str, history: History, tsdb: Path, scratch: Path, target: Mapping[str, str] | None = None
) -> None:
    """Write ``history`` into TSDB blocks inside ``tsdb``, one day of it per promtool run, every series
    with the ``target`` labels a scrape would add (its job, ...).

    promtool 2.42 reads its whole input once for every 2-hour block it cuts, so a history
    of weeks in one file costs weeks times more than the same in files of a day each.
    """
    tsdb.mkdir(parents=True, exist_ok=True)
    scratch.mkdir(parents=True, exist_ok=True)
    first, last = history.span
    day = math.floor(first / DAY) * DAY
    while day <= last:
        openmetrics = scratch / "day.om"
        with openmetrics.open("w", encoding="utf-8") as out:
            history.write_openmetrics(out, day, day + DAY, target or {})
        _run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(openmetrics), str(tsdb)],
             "promtool tsdb create-blocks-from openmetrics")
        openmetrics.unlink()
        day += DAY


class LocalPrometheus:
    """Prometheus on ``tsdb``, loopback only, no scrapes, no rules: a query engine over backfilled data."""

    def __init__(self, binary: str, tsdb: Path, workdir: Path) -> None:
        self.binary = binary
        self.tsdb = tsdb
        self.workdir = workdir
        self.port = 0
        self.server: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LocalPrometheus:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None,
                 ) -> None:
        self.stop()

    def start(self) -> LocalPrometheus:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump({"global": {"evaluation_interval": "1m"}}), encoding="utf-8")
        self.port = free_port()
        self.server = ServerProcess(
            [self.binary, f"--config.file={config}", f"--storage.tsdb.path={self.tsdb}",
             # The history lies years back: keep every block, whatever its age.
             "--storage.tsdb.retention.time=100y", f"--web.listen-address=127.0.0.1:{self.port}",
             "--query.timeout=10m"],
            self.workdir / "prometheus.log", f"{self.url}/-/ready", ready_timeout_s=120,
        )
        try:
            self.server.start()
        except RuntimeError as error:
            raise PrometheusError(str(error)) from None
        return self

    def stop(self) -> None:
        """Stop the process this object started (and nothing else)."""
        if self.server is not None:
            self.server.stop()

    def restart(self) -> None:
        """Stop and start again: Prometheus loads blocks moved into its TSDB at startup."""
        self.stop()
        self.start()

    def _api(self, path: str, parameters: dict[str, str]) -> Any:
        request = urllib.request.Request(  # noqa: S310 - loopback http
            f"{self.url}/api/v1/{path}", data=urllib.parse.urlencode(parameters).encode(), method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:  # noqa: S310 - loopback http
                body = json.load(answer)
        except urllib.error.HTTPError as error:
            body = json.load(error)
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {parameters.get('query', '')!r}: {body.get('error', body)}")
        return body["data"]

    def query_range(self, expr: str, start: float, end: float, step: int) -> dict[tuple[tuple[str, str], ...],
                                                                                  list[tuple[float, float]]]:
        """Points of every series ``expr`` returns at ``start``, ``start + step``, ... ``end``, by label set."""
        series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
        chunk = step * (MAX_POINTS - 1)
        begin = start
        while begin <= end:
            until = min(begin + chunk, end)
            data = self._api("query_range", {"query": expr, "start": f"{begin:.3f}", "end": f"{until:.3f}",
                                             "step": f"{step}s"})
            for result in data["result"]:
                labels = tuple(sorted(result["metric"].items()))
                series.setdefault(labels, []).extend((float(t), float(v)) for t, v in result["values"])
            begin = until + step
        return series

    def backfill_rules(self, promtool: str, rule_file: Path, start: float, end: float, interval: int) -> None:
        """Evaluate the recording rules of ``rule_file`` over [start, end] and load their blocks.

        Like Prometheus, promtool evaluates a rule group at an offset within the interval taken
        from a hash of the group's name and file path as given: the file is passed by its name
        alone, so the same rules are evaluated at the same times wherever the TSDB lies.
        """
        output = self.workdir / f"rules-{rule_file.stem}"
        shutil.rmtree(output, ignore_errors=True)
        output.mkdir(parents=True)
        _run([os.path.abspath(promtool), "tsdb", "create-blocks-from", "rules", "--quiet", f"--url={self.url}",
              f"--start={math.floor(start)}", f"--end={math.ceil(end)}", f"--eval-interval={interval}s",
              f"--output-dir={output}", rule_file.name],
             f"promtool tsdb create-blocks-from rules {rule_file.name}", cwd=rule_file.parent)
        for block in output.iterdir():
            if block.is_dir():
                shutil.move(str(block), str(self.tsdb / block.name))
        shutil.rmtree(output, ignore_errors=True)
        self.restart()
