"""The token bucket, driven by a clock the test moves; the Retry-After value it leads to."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request

from streams.core.clock import ManualClock
from streams.ingest.limits import BodyTooLarge, RateLimiter, read_body, retry_after


def test_a_full_bucket_allows_the_burst_then_refuses() -> None:
    clock = ManualClock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock.now)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(0.5)


def test_the_bucket_refills_at_the_rate_up_to_the_burst() -> None:
    clock = ManualClock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock.now)
    for _ in range(3):
        limiter.acquire("a")
    clock.advance(0.25)
    assert limiter.acquire("a") == pytest.approx(0.25)  # half a request refilled: a quarter second to go
    clock.advance(0.25)
    assert limiter.acquire("a") == 0.0
    clock.advance(3600)
    assert [limiter.acquire("a") for _ in range(4)][-1] > 0  # refilled to the burst, not beyond


def test_each_key_has_its_own_bucket() -> None:
    clock = ManualClock()
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock.now)
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0
    assert limiter.acquire("b") == 0.0


def test_refused_requests_do_not_drain_the_bucket() -> None:
    clock = ManualClock()
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock.now)
    limiter.acquire("a")
    for _ in range(10):
        assert limiter.acquire("a") == pytest.approx(1.0)
    clock.advance(1.0)
    assert limiter.acquire("a") == 0.0


@pytest.mark.parametrize(("wait", "header"), [(0.01, "1"), (1.0, "1"), (1.2, "2"), (59.5, "60")])
def test_retry_after_is_whole_seconds_never_early(wait: float, header: str) -> None:
    assert retry_after(wait) == header


def test_a_limit_needs_a_rate_and_a_burst() -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        RateLimiter(rate=0, burst=1)
    with pytest.raises(ValueError, match="burst >= 1"):
        RateLimiter(rate=1, burst=0)


def request(chunks: list[bytes], headers: dict[str, str], asked: list[int]) -> Request:
    """A request whose body arrives in ``chunks``; ``asked`` counts how many were asked for."""

    async def receive() -> dict[str, Any]:
        asked.append(1)
        body = chunks[len(asked) - 1]
        return {"type": "http.request", "body": body, "more_body": len(asked) < len(chunks)}

    raw_headers = [(name.encode(), value.encode()) for name, value in headers.items()]
    return Request({"type": "http", "method": "POST", "headers": raw_headers}, receive)


async def test_a_body_within_the_limit_is_read_whole() -> None:
    asked: list[int] = []
    assert await read_body(request([b"ab", b"cd", b""], {}, asked), limit=4) == b"abcd"
    assert len(asked) == 3


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    asked: list[int] = []
    with pytest.raises(BodyTooLarge, match="request body is 5 bytes, over the 4 byte limit"):
        await read_body(request([b"abcde"], {"content-length": "5"}, asked), limit=4)
    assert asked == []


async def test_a_chunked_body_is_refused_at_the_chunk_that_passes_the_limit() -> None:
    asked: list[int] = []
    chunks = [b"x" * 1000] * 100
    with pytest.raises(BodyTooLarge, match="more than 2048 bytes"):
        await read_body(request(chunks, {}, asked), limit=2048)
    assert len(asked) == 3
