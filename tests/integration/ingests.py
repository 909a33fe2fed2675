"""`corridor ingest` as a child process on a free loopback port, for the tests that post to it."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

from streams.process import corridor_command, fetch_metrics, start_corridor, stop_process
from tests.integration.conftest import free_port
from tests.integration.workers import wait_for

PUBLISHER = "publisher-of-every-family"
SHIPPER = "publisher-of-shipments"
TOKENS = {PUBLISHER: ["*"], SHIPPER: ["shipments"]}


@dataclass
class Answer:
    status: int
    headers: Message  # case-insensitive
    body: Any


@dataclass
class IngestProcess:
    """One `corridor ingest` subprocess on a free loopback port."""

    bootstrap: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    def start(self) -> IngestProcess:
        settings = {
            "CORRIDOR_KAFKA_BOOTSTRAP": self.bootstrap,
            "CORRIDOR_INGEST_TOKENS": json.dumps(TOKENS),
            "CORRIDOR_LOG_FORMAT": "json",
            **self.env,
        }
        self.process = start_corridor(corridor_command("ingest", "--host", "127.0.0.1", "--port", str(self.port)),
                                      log_path=self.log_path, settings=settings, new_session=False)
        wait_for(lambda: self.get("/healthz") == 200, timeout=60, interval=0.1, message="the ingest to answer")
        return self

    def stop(self) -> int | None:
        return None if self.process is None else stop_process(self.process, 60)

    def get(self, path: str) -> int | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as error:
            error.close()
            return error.code
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def metrics(self) -> str:
        return fetch_metrics(f"http://127.0.0.1:{self.port}/metrics", 5)

    def post(self, family: str, body: Any, token: str | None = PUBLISHER) -> Answer:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/v1/events/{family}", data=data, method="POST")
        request.add_header("Content-Type", "application/json")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return Answer(response.status, response.headers, json.loads(response.read()))
        except urllib.error.HTTPError as error:
            with error:
                return Answer(error.code, error.headers, json.loads(error.read()))

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")
