"""What the tests' stand-ins for other services' HTTP APIs share: a server on a free loopback port.

A stand-in keeps ``requests`` (method and path of each request, in order), a ``_lock`` and its
``url``, and answers in ``_route``; raising :class:`Answer` ends a request with a status and a
body, anything it returns is a 200 with that body (JSON, or bytes as they are).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit


class Answer(Exception):
    """Ends a request with this status and JSON body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class FakeHTTPService:
    """Serves ``_route`` on 127.0.0.1 for the length of ``serving()``, one thread per request."""

    content_type = "application/json"
    requests: list[tuple[str, str]]
    violations: list[str]  # what the real service would refuse or misread
    url: str
    _lock: threading.Lock

    def _route(self, request: BaseHTTPRequestHandler, path: str, raw: bytes) -> Any:
        raise NotImplementedError

    @contextmanager
    def serving(self) -> Iterator[Self]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self)

            do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        path = urlsplit(request.path).path
        with self._lock:
            self.requests.append((request.command, path))
            try:
                status, body = 200, self._route(request, path, raw)
            except Answer as answer:
                status, body = answer.status, answer.body
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", self.content_type)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _json_object(self, request: BaseHTTPRequestHandler, raw: bytes, content_types: tuple[str, ...],
                     refusal: Answer) -> dict[str, Any]:
        """The body as a JSON object; a Content-Type not in ``content_types`` is a violation, a body that
        is not a JSON object one more, answered with ``refusal``."""
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type not in content_types:
            self.violations.append(f"{request.command} {request.path}: Content-Type {content_type!r}")
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            self.violations.append(f"{request.command} {request.path}: the body is not a JSON object: {raw[:80]!r}")
            raise refusal
        return payload


class FakeMetricsPage(FakeHTTPService):
    """A worker's ``/metrics`` page: answers ``status`` (changed at will) with ``body(status)``."""

    content_type = "text/plain; version=0.0.4"

    def __init__(self, status: int, body: Callable[[int], bytes]) -> None:
        self.status = status
        self._body = body
        self.requests, self.violations, self._lock = [], [], threading.Lock()

    def _route(self, request: BaseHTTPRequestHandler, path: str, raw: bytes) -> bytes:
        if self.status != 200:
            raise Answer(self.status, self._body(self.status))
        return self._body(200)
