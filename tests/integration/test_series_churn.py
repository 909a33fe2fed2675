"""The series churn of a rolling restart of two workers, measured (docs/metrics.md, "Series churn").

Two workers of one group, traffic flowing, each restarted in turn while both /metrics endpoints
are scraped as Prometheus would. The state-derived series a rolling restart adds must stay within
the bound docs/metrics.md states: each of its rebalances (a worker leaving, a worker joining) moves
a partition at most once, and a move starts at most one series per label set. Named workers on
Apache Kafka are static members: a restart within the session timeout moves fewer partitions than
there are, where unnamed workers move each partition of the restarted worker twice.

Four rolling restarts take minutes: outside `make test`, run with `pytest -m measure`.
"""

from __future__ import annotations

import pytest

from tests.integration.churn import rolling_restart
from tests.integration.conftest import ON_BOTH_FRESH_BROKERS
from tests.kafka_cluster import KafkaCluster

pytestmark = [pytest.mark.integration, pytest.mark.measure]

WORKERS = 2


@ON_BOTH_FRESH_BROKERS
@pytest.mark.parametrize("named", [False, True], ids=["unnamed", "named"])
def test_a_rolling_restart_of_two_workers_adds_at_most_the_documented_series(named, fresh_broker, tmp_path, request):
    report = rolling_restart(fresh_broker, tmp_path, app_id="churn", named=named)
    for line in report.lines():
        print(f"{request.node.callspec.id}: {line}")
    assert report.steady > 0
    assert report.per_rolling_restart <= 2 * WORKERS * report.steady
    if named and isinstance(fresh_broker, KafkaCluster):
        assert report.periods_a + report.periods_b < report.partitions
