"""Which broker answers, and what the worker and the SDK do differently for it.

Two kinds of broker are meant to run the workers: Apache Kafka (or any replicated broker
that speaks its protocol) in production, and the embedded broker (Tansu, one node, memory
storage) of ``corridor run`` and the fast tests. The embedded broker needs workarounds
that cost throughput or turn off a safety check; they apply only when it is the one
answering:

============================  ==========================  ==============================
                              Apache Kafka                the embedded broker
============================  ==========================  ==============================
worker producer batches       faust's (16 KiB, linger 0)  one record per batch: it
                                                          reports end offsets from the
                                                          last batch's base offset
faust's recovery check        on                          off: a restarted broker is a
                                                          new cluster whose changelog
                                                          starts below the store's offset
broker back as a new cluster  never rebased: a restarted  every partition rebased (read
                              cluster is the same one     again from its first record,
                                                          totals kept)
SDK's InitProducerId          aiokafka's own producer     v3 (it refuses aiokafka's v0)
static group membership       with CORRIDOR_WORKER_ID     never: a member that rejoins
                                                          under its instance id waits
                                                          out its session, and a second
                                                          one is never assigned
============================  ==========================  ==============================

``CORRIDOR_BROKER_FLAVOR`` chooses: ``kafka``, ``embedded``, or ``auto`` (the default),
which asks the broker for its API versions: a broker that offers no OffsetForLeaderEpoch
(API key 23, which every Apache Kafka since 0.11 and every replicating broker serves) has
no replicas, and is the embedded kind. A TLS or SASL listener is never the embedded broker.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

from aiokafka.errors import KafkaConnectionError

from streams.kafka.broker import offered_api_keys, split_bootstrap
from streams.settings import Settings

#: OffsetForLeaderEpoch: how a follower or a consumer checks a log against its leader's epochs.
OFFSET_FOR_LEADER_EPOCH = 23


class BrokerFlavor(enum.StrEnum):
    KAFKA = "kafka"
    EMBEDDED = "embedded"


@dataclass(frozen=True, slots=True)
class BrokerProfile:
    """What differs between the brokers (the module's table), one field a difference."""

    flavor: BrokerFlavor
    #: Largest produce batch of the worker's producer in bytes (changelog, dead letters); 1: one record each.
    producer_max_batch_size: int
    #: faust's check, after restoring a table, that the changelog's end was reached.
    recovery_consistency_check: bool
    #: A broker that comes back with another cluster id started empty: rebase every partition.
    rebase_new_cluster: bool
    #: The SDK asks for its producer id with InitProducerId v3 instead of aiokafka's v0.
    init_producer_id_v3: bool
    #: A named worker (``CORRIDOR_WORKER_ID``) joins its group as a static member under its name.
    static_membership: bool


PROFILES: dict[BrokerFlavor, BrokerProfile] = {
    BrokerFlavor.KAFKA: BrokerProfile(
        BrokerFlavor.KAFKA, producer_max_batch_size=16_384, recovery_consistency_check=True,
        rebase_new_cluster=False, init_producer_id_v3=False, static_membership=True,
    ),
    BrokerFlavor.EMBEDDED: BrokerProfile(
        BrokerFlavor.EMBEDDED, producer_max_batch_size=1, recovery_consistency_check=False,
        rebase_new_cluster=True, init_producer_id_v3=True, static_membership=False,
    ),
}


async def broker_profile(settings: Settings) -> BrokerProfile:
    """The profile of the broker ``settings`` point at (asked only under ``broker_flavor=auto``);
    KafkaConnectionError when none answers."""
    if settings.broker_flavor != "auto":
        return PROFILES[BrokerFlavor(settings.broker_flavor)]
    if settings.kafka_security_protocol != "PLAINTEXT":
        return PROFILES[BrokerFlavor.KAFKA]  # the embedded broker listens in plain text only
    last_error: OSError | None = None
    for host, port in split_bootstrap(settings.bootstrap):
        try:
            api_keys = await asyncio.to_thread(offered_api_keys, host, port)
        except OSError as exc:
            last_error = exc
            continue
        return PROFILES[flavor_of(api_keys)]
    # aiokafka's own error for an unreachable broker: retried, and reported, like the clients' own.
    raise KafkaConnectionError(f"no broker at {settings.bootstrap} answered an API versions request: {last_error}")


def flavor_of(api_keys: set[int]) -> BrokerFlavor:
    """The broker kind that offers ``api_keys`` (see the module docstring)."""
    return BrokerFlavor.KAFKA if OFFSET_FOR_LEADER_EPOCH in api_keys else BrokerFlavor.EMBEDDED
