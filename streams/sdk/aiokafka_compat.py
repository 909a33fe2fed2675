"""The aiokafka internals the producer SDK relies on, in one place.

Each is checked by tests/unit/sdk/test_aiokafka_compat.py, which fails when an aiokafka
upgrade removes or renames it. Nothing here changes aiokafka itself: importing this
module leaves every other aiokafka client of the process as it was.

- :class:`Producer`: an ``AIOKafkaProducer`` that asks for its idempotent producer id
  with InitProducerId v3 when the broker offers it (its own sender only).
- :func:`abandon_queue`: fail every batch a producer has not delivered, so that
  ``stop()`` returns.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.producer.sender import InitPIDHandler, Sender
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.transaction import InitProducerIdRequest_v0
from aiokafka.protocol.types import CompactString, Int16, Int32, Int64, Schema, TaggedFields

INIT_PRODUCER_ID_API_KEY = 22


class InitProducerIdResponseV3(Response):  # type: ignore[misc]  # aiokafka is untyped
    API_KEY = INIT_PRODUCER_ID_API_KEY
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("producer_id", Int64),
        ("producer_epoch", Int16),
        ("tags", TaggedFields),
    )


class InitProducerIdRequestV3(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = INIT_PRODUCER_ID_API_KEY
    API_VERSION = 3
    RESPONSE_TYPE = InitProducerIdResponseV3
    SCHEMA = Schema(
        ("transactional_id", CompactString("utf-8")),
        ("transaction_timeout_ms", Int32),
        ("producer_id", Int64),
        ("producer_epoch", Int16),
        ("tags", TaggedFields),
    )


class InitProducerIdRequest(Request[InitProducerIdRequest_v0 | InitProducerIdRequestV3]):  # type: ignore[misc]
    """InitProducerId at the newest version both sides speak: v3 when the broker offers it, else v0.

    aiokafka speaks only v0, which lacks the producer id/epoch fields; the embedded broker
    (Tansu) answers v0 with UnknownError, so an idempotent producer could not start on it.
    """

    API_KEY = INIT_PRODUCER_ID_API_KEY

    def __init__(self, transactional_id: str | None, transaction_timeout_ms: int) -> None:
        self._transactional_id = transactional_id
        self._transaction_timeout_ms = transaction_timeout_ms

    def build(
        self, request_struct_class: type[InitProducerIdRequest_v0 | InitProducerIdRequestV3]
    ) -> InitProducerIdRequest_v0 | InitProducerIdRequestV3:
        if request_struct_class is InitProducerIdRequestV3:
            # -1/-1: "a new producer", as the Java client asks.
            return InitProducerIdRequestV3(self._transactional_id, self._transaction_timeout_ms, -1, -1, {})
        return InitProducerIdRequest_v0(self._transactional_id, self._transaction_timeout_ms)


class _InitPIDHandler(InitPIDHandler):  # type: ignore[misc]
    """aiokafka's producer-id handler (same response handling), sending :class:`InitProducerIdRequest`."""

    def create_request(self) -> InitProducerIdRequest:
        txn_manager = self._sender._txn_manager
        return InitProducerIdRequest(txn_manager.transactional_id, txn_manager.transaction_timeout_ms)


class _Sender(Sender):  # type: ignore[misc]
    """aiokafka's sender, asking for the producer id with :class:`InitProducerIdRequest`."""

    async def _do_init_pid(self, node_id: int) -> bool:
        return bool(await _InitPIDHandler(self).do(node_id))


class Producer(AIOKafkaProducer):  # type: ignore[misc]
    """An ``AIOKafkaProducer`` whose idempotent producer id request speaks InitProducerId v3.

    Only this instance's sender is changed; a plain ``AIOKafkaProducer`` in the same
    process still sends aiokafka's own request.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if type(self._sender) is not Sender:
            raise TypeError(f"aiokafka's producer built a {type(self._sender).__name__}, not its Sender")
        self._sender.__class__ = _Sender  # same class layout; only _do_init_pid differs


async def abandon_queue(producer: AIOKafkaProducer, error: KafkaError) -> None:
    """Fail every batch ``producer`` has not delivered, so that ``stop()`` returns.

    An idempotent aiokafka producer retries a batch forever and has no public way to
    drop one. Its sender is stopped first (in-flight requests finish or fail), then each
    batch fails as on aiokafka's own fatal errors. A batch that was sent and re-queued
    still has the done-callback that removes it from the in-flight set, so every batch
    is put in that set first.
    """
    sender_task = producer._sender.sender_task
    if sender_task is not None and not sender_task.done():
        sender_task.cancel()
        await asyncio.wait({sender_task})
    accumulator = producer._message_accumulator
    batches = {batch for queue in accumulator._batches.values() for batch in queue} | accumulator._pending_batches
    accumulator._pending_batches = set(batches)
    for batch in batches:
        batch.failure(error)
        batch._drain_waiter.exception()  # nobody waits on it any more; mark it seen


__all__ = [
    "InitProducerIdRequest",
    "InitProducerIdRequestV3",
    "InitProducerIdResponseV3",
    "Producer",
    "abandon_queue",
]
