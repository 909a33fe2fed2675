"""Request limits of the HTTP ingest: a token bucket per token, and a body size read with a bound."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable

from starlette.requests import Request


class RateLimiter:
    """A token bucket per key: ``burst`` requests at once, refilled at ``rate`` per second.

    ``clock`` gives monotonic seconds (tests pass their own). Keys are configured tokens,
    so the buckets are bounded by the configuration, not by callers.
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens left, when counted)

    def acquire(self, key: Hashable) -> float:
        """Take one request from ``key``'s bucket: 0.0 when allowed, else the seconds until one is."""
        now = self._clock()
        tokens, counted = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - counted) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate


def retry_after(wait_s: float) -> str:
    """A ``Retry-After`` value: whole seconds, at least 1, never earlier than ``wait_s``."""
    return str(max(1, math.ceil(wait_s)))


class BodyTooLarge(Exception):
    """A request body over the limit (declared by Content-Length, or found while reading)."""

    def __init__(self, limit: int, declared: int | None = None) -> None:
        self.limit = limit
        self.declared = declared
        size = f"{declared} bytes" if declared is not None else f"more than {limit} bytes"
        super().__init__(f"request body is {size}, over the {limit} byte limit: send smaller batches")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused before reading when Content-Length is over ``limit`` and as soon
    as what arrives passes it, so no more than ``limit`` bytes are ever held."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit, int(declared))
    body = bytearray()
    async for chunk in request.stream():
        if len(body) + len(chunk) > limit:
            raise BodyTooLarge(limit)
        body += chunk
    return bytes(body)


__all__ = ["BodyTooLarge", "RateLimiter", "read_body", "retry_after"]
