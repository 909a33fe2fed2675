"""Recreating topics empty (streams/kafka/admin.py) against an in-memory cluster that, like Kafka, deletes and
creates topics in the background."""

from __future__ import annotations

from collections.abc import Collection, Mapping

import pytest

from streams.kafka.admin import TopicsNotRecreated, recreate_topics

ALREADY_EXISTS = 36
DELETION_DISABLED = 73


class SlowCluster:
    """Topics (name: partitions) that take ``lag`` requests to go once deleted, and whose names are refused
    ("already exists") meanwhile; a new topic's partitions get their leaders ``lag`` requests after its create.
    ``listing_ahead``: the listing drops a deleted topic at once, before the brokers let go of its name."""

    def __init__(self, topics: Mapping[str, int], lag: int = 2, refuse_deletion: bool = False,
                 never_deleted: bool = False, listing_ahead: bool = False) -> None:
        self.topics = dict(topics)
        self.lag = lag
        self.refuse_deletion = refuse_deletion
        self.never_deleted = never_deleted
        self.listing_ahead = listing_ahead
        self.deleting: dict[str, int] = {}  # name: requests until it is gone
        self.leaderless: dict[str, int] = {}  # name: requests until its partitions have leaders
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def _tick(self) -> None:
        for name in list(self.deleting):
            self.deleting[name] -= 1
            if self.deleting[name] <= 0 and not self.never_deleted:
                del self.deleting[name], self.topics[name]
        for name in list(self.leaderless):
            self.leaderless[name] -= 1
            if self.leaderless[name] <= 0:
                del self.leaderless[name]

    async def led_partitions(self) -> dict[str, int]:
        self._tick()
        return {name: 0 if name in self.leaderless else count for name, count in self.topics.items()
                if not (self.listing_ahead and name in self.deleting)}

    async def delete(self, topics: Collection[str]) -> dict[str, int]:
        self._tick()
        self.calls.append(("delete", tuple(topics)))
        if self.refuse_deletion:
            return dict.fromkeys(topics, DELETION_DISABLED)
        self.deleting.update(dict.fromkeys(topics, self.lag))
        return dict.fromkeys(topics, 0)

    async def create(self, topics: Mapping[str, int]) -> dict[str, int]:
        self._tick()
        self.calls.append(("create", tuple(topics)))
        errors = {}
        for name, count in topics.items():
            if name in self.topics:
                errors[name] = ALREADY_EXISTS
            else:
                self.topics[name] = count
                self.leaderless[name] = self.lag
                errors[name] = 0
        return errors


def is_bench_topic(name: str) -> bool:
    return name.startswith("bench-")


async def test_existing_topics_are_deleted_then_created_again_once_gone_and_led() -> None:
    cluster = SlowCluster({"orders": 4, "bench-1-changelog": 4, "bench-2-changelog": 2, "keep": 1})
    deleted = await recreate_topics(cluster, {"orders": 4, "refunds": 4}, also_delete=is_bench_topic, poll_s=0)
    assert deleted == ["bench-1-changelog", "bench-2-changelog", "orders"]
    assert cluster.topics == {"orders": 4, "refunds": 4, "keep": 1}
    assert not cluster.deleting and not cluster.leaderless  # returned only once every new partition had a leader
    assert cluster.calls[0] == ("delete", ("bench-1-changelog", "bench-2-changelog", "orders"))
    assert cluster.calls[1][0] == "create"


async def test_a_create_refused_while_the_deletion_settles_is_asked_again() -> None:
    cluster = SlowCluster({"orders": 4}, lag=3, listing_ahead=True)
    await recreate_topics(cluster, {"orders": 4}, poll_s=0)
    assert [kind for kind, _ in cluster.calls] == ["delete", "create", "create"]
    assert cluster.topics == {"orders": 4} and not cluster.leaderless


async def test_on_an_empty_cluster_nothing_is_deleted() -> None:
    cluster = SlowCluster({})
    assert await recreate_topics(cluster, {"orders": 3}, poll_s=0) == []
    assert [kind for kind, _ in cluster.calls] == ["create"]
    assert cluster.topics == {"orders": 3}


async def test_a_refused_deletion_names_the_topic_and_the_error() -> None:
    cluster = SlowCluster({"orders": 4}, refuse_deletion=True)
    with pytest.raises(TopicsNotRecreated, match=r"refused deleting orders \(error 73\)"):
        await recreate_topics(cluster, {"orders": 4}, poll_s=0)
    assert [kind for kind, _ in cluster.calls] == ["delete"]


async def test_a_deletion_that_never_ends_times_out() -> None:
    cluster = SlowCluster({"orders": 4}, never_deleted=True)
    with pytest.raises(TopicsNotRecreated, match=r"orders still listed after deletion after 0.05s"):
        await recreate_topics(cluster, {"orders": 4}, timeout_s=0.05, poll_s=0.01)
    assert [kind for kind, _ in cluster.calls] == ["delete"]
