"""The broker probe (one ApiVersions request), blocking and async, against a fake listener."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from streams.kafka import broker
from streams.kafka.broker import BrokerError, broker_answers, wait_until_ready


class FakeBroker:
    """A loopback listener answering each connection's first request with ``reply(correlation_id)``."""

    def __init__(self, correlation_id: int = broker._CORRELATION_ID, split: bool = False) -> None:
        self.correlation_id = correlation_id
        self.split = split
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                (size,) = struct.unpack(">i", conn.recv(4))
                self.requests.append(conn.recv(size))
                reply = self.reply(self.requests[-1])
                if self.split:  # a reply in two segments must still be read whole
                    conn.sendall(reply[:5])
                    conn.sendall(reply[5:])
                else:
                    conn.sendall(reply)

    def reply(self, request: bytes) -> bytes:
        """An ApiVersions answer's header alone: size, ``correlation_id``, no error."""
        return struct.pack(">iih", 6, self.correlation_id, 0)

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        self.listener.close()
        self.thread.join(5)


@pytest.fixture
def fake() -> Iterator[FakeBroker]:
    server = FakeBroker()
    yield server
    server.close()


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        return listener.getsockname()[1]


def test_the_probe_sends_api_versions_v0_and_accepts_its_answer(fake: FakeBroker) -> None:
    assert broker._answers("127.0.0.1", fake.port)
    api_key, version, correlation_id = struct.unpack(">hhi", fake.requests[0][:8])
    assert (api_key, version, correlation_id) == (18, 0, broker._CORRELATION_ID)


def test_the_probe_reads_a_reply_split_in_segments() -> None:
    server = FakeBroker(split=True)
    try:
        assert broker._answers("127.0.0.1", server.port)
    finally:
        server.close()


def test_the_probe_refuses_a_wrong_answer_and_a_closed_port() -> None:
    server = FakeBroker(correlation_id=7)
    try:
        assert not broker._answers("127.0.0.1", server.port)
    finally:
        server.close()
    assert not broker._answers("127.0.0.1", closed_port())


async def test_broker_answers_runs_the_same_probe_over_every_bootstrap_address(fake: FakeBroker) -> None:
    assert await broker_answers(f"127.0.0.1:{closed_port()}, 127.0.0.1:{fake.port}")
    assert len(fake.requests) == 1
    assert not await broker_answers(f"127.0.0.1:{closed_port()}")


async def test_wait_until_ready_returns_once_answered_and_gives_up_after_its_timeout(fake: FakeBroker) -> None:
    await wait_until_ready(f"127.0.0.1:{fake.port}", timeout=2)
    with pytest.raises(BrokerError, match="no Kafka broker answered"):
        await wait_until_ready(f"127.0.0.1:{closed_port()}", timeout=0.2)
