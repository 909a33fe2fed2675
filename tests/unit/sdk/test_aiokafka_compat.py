"""The aiokafka internals streams/sdk/aiokafka_compat.py relies on: this fails when an upgrade removes one."""

from __future__ import annotations

import inspect

import aiokafka.producer.producer
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.conn import AIOKafkaConnection
from aiokafka.errors import KafkaConnectionError
from aiokafka.producer.message_accumulator import MessageAccumulator, MessageBatch
from aiokafka.producer.sender import BaseHandler, InitPIDHandler, Sender
from aiokafka.producer.transaction_manager import TransactionManager
from aiokafka.protocol import transaction
from aiokafka.protocol.api import Request, RequestStruct
from aiokafka.protocol.transaction import InitProducerIdRequest_v0, InitProducerIdResponse_v0

from streams.sdk import aiokafka_compat
from streams.sdk.aiokafka_compat import InitProducerIdRequest, InitProducerIdRequestV3, InitProducerIdResponseV3

NOWHERE = "127.0.0.1:1"


def parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_the_producer_keeps_one_sender_and_accumulator_the_sdk_can_reach():
    init = inspect.getsource(AIOKafkaProducer.__init__)
    assert "self._sender = Sender(" in init
    assert "self._message_accumulator = MessageAccumulator(" in init
    assert aiokafka.producer.producer.Sender is Sender
    # The SDK's producer re-classes its sender to a subclass: no slots, same layout.
    assert "__slots__" not in vars(Sender)


def test_the_sender_asks_for_its_producer_id_through_do_init_pid():
    assert inspect.iscoroutinefunction(Sender._do_init_pid)
    assert parameters(Sender._do_init_pid) == ["self", "node_id"]
    assert "await self._do_init_pid(node_id)" in inspect.getsource(Sender._maybe_wait_for_pid)
    assert "InitPIDHandler(self)" in inspect.getsource(Sender._do_init_pid)


async def test_the_producer_id_handler_builds_its_request_in_create_request():
    assert issubclass(InitPIDHandler, BaseHandler)
    assert parameters(InitPIDHandler.__init__) == ["self", "sender"]
    assert parameters(InitPIDHandler.create_request) == ["self"]
    assert "req = self.create_request()" in inspect.getsource(BaseHandler.do)
    assert "self._sender._txn_manager" in inspect.getsource(InitPIDHandler.create_request)
    txn_manager = TransactionManager(None, 60_000)
    assert (txn_manager.transactional_id, txn_manager.transaction_timeout_ms) == (None, 60_000)
    # The handler reads these fields of the response, which the v3 response has as v0 does.
    handle = inspect.getsource(InitPIDHandler.handle_response)
    for name in ("error_code", "producer_id", "producer_epoch"):
        assert f"resp.{name}" in handle
        assert name in InitProducerIdResponseV3.SCHEMA.names
        assert name in InitProducerIdResponse_v0.SCHEMA.names


def test_requests_are_versioned_structs_negotiated_per_connection():
    # Request subclasses list their versions as the generic union of their structs.
    assert (InitProducerIdRequest_v0, InitProducerIdRequestV3) == InitProducerIdRequest._CLASSES
    assert parameters(Request.build) == ["self", "request_struct_class"]
    assert "request.prepare(self._versions)" in inspect.getsource(AIOKafkaConnection.send)
    # Flexible versions (v3) get the tagged request and response headers.
    assert "self.FLEXIBLE_VERSION" in inspect.getsource(RequestStruct.build_request_header)
    assert "self.FLEXIBLE_VERSION" in inspect.getsource(RequestStruct.parse_response_header)


def test_aiokafka_itself_still_asks_for_a_producer_id_with_v0_only():
    # Why aiokafka_compat.Producer exists; once aiokafka offers v3 itself it may go.
    assert (InitProducerIdRequest_v0,) == transaction.InitProducerIdRequest._CLASSES


def test_the_queue_internals_abandon_queue_touches_are_there():
    assert isinstance(inspect.getattr_static(Sender, "sender_task"), property)
    init = inspect.getsource(MessageAccumulator.__init__)
    assert "self._batches = collections.defaultdict(collections.deque)" in init
    assert "self._pending_batches = set()" in init
    # A sent batch leaves the in-flight set through its done-callback.
    assert "self._pending_batches.remove(batch)" in inspect.getsource(MessageAccumulator)
    assert "self._drain_waiter = create_future()" in inspect.getsource(MessageBatch.__init__)
    assert parameters(MessageBatch.failure) == ["self", "exception"]


def test_init_producer_id_asks_for_a_new_id_with_v3_when_the_broker_offers_it():
    request = InitProducerIdRequest(None, 60_000).prepare({22: (0, 4)})
    assert isinstance(request, InitProducerIdRequestV3)
    assert request.to_object() == {
        "transactional_id": None,
        "transaction_timeout_ms": 60_000,
        "producer_id": -1,
        "producer_epoch": -1,
        "tags": {},
    }
    # flexible encoding: null compact string (0), timeout, -1 as int64 and int16, no tags
    assert request.encode() == b"\x00" + (60_000).to_bytes(4, "big") + b"\xff" * 10 + b"\x00"


def test_init_producer_id_falls_back_to_v0_for_older_brokers():
    request = InitProducerIdRequest(None, 60_000).prepare({22: (0, 1)})
    assert isinstance(request, InitProducerIdRequest_v0)


async def test_only_the_sdk_producer_asks_for_its_id_with_the_v3_request():
    sdk = aiokafka_compat.Producer(bootstrap_servers=NOWHERE, enable_idempotence=True)
    plain = AIOKafkaProducer(bootstrap_servers=NOWHERE, enable_idempotence=True)
    asked: dict[str, object] = {}

    def broker(name: str, response: object):
        async def send(node_id: int, request: object, **_: object) -> object:
            asked[name] = request
            return response

        return send

    try:
        sdk.client.send = broker("sdk", InitProducerIdResponseV3(0, 0, 7, 0, {}))
        plain.client.send = broker("plain", InitProducerIdResponse_v0(0, 0, 8, 0))
        assert await sdk._sender._do_init_pid(0) and await plain._sender._do_init_pid(0)
        assert type(asked["sdk"]) is InitProducerIdRequest
        assert type(asked["plain"]) is transaction.InitProducerIdRequest
        assert sdk._txn_manager.producer_id == 7 and plain._txn_manager.producer_id == 8
        assert type(plain._sender) is Sender
    finally:
        await sdk.stop()
        await plain.stop()


async def test_abandon_queue_fails_every_undelivered_batch():
    producer = aiokafka_compat.Producer(bootstrap_servers=NOWHERE, enable_idempotence=True)
    accumulator = producer._message_accumulator
    try:
        queued = await accumulator.add_message(TopicPartition("t", 0), None, b"queued", timeout=1)
        sent = await accumulator.add_message(TopicPartition("t", 1), None, b"sent", timeout=1)
        (in_flight,) = accumulator._batches.pop(TopicPartition("t", 1))
        accumulator._pending_batches.add(in_flight)  # as the sender's drain leaves it
        await aiokafka_compat.abandon_queue(producer, KafkaConnectionError("gone"))
        for future in (queued, sent):
            assert isinstance(future.exception(), KafkaConnectionError)
    finally:
        await producer.stop()
