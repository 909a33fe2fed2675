"""The live view and the summary line, from a fixed /metrics text."""

from __future__ import annotations

import re

import pytest
from rich.console import Console, RenderableType

from streams.cli.view import RunInfo, Snapshot, StreamHealth, bits_per_second, render, summary_fields, summary_line

# Two modes on one route (summed by the view), two partitions of lag, rejections under two reasons.
METRICS = """\
# TYPE corridor_shipment_teu_window gauge
corridor_shipment_teu_window{corridor="ILSTC",route="CNCKG-CNQZH-SGSIN",mode="rail_sea",window="1h"} 40
corridor_shipment_teu_window{corridor="ILSTC",route="CNCKG-CNQZH-SGSIN",mode="rail_sea",window="24h"} 1000
corridor_shipment_teu_window{corridor="ILSTC",route="CNCKG-CNQZH-SGSIN",mode="rail_sea",window="7d"} 7000
corridor_shipment_teu_window{corridor="ILSTC",route="CNCKG-CNQZH-SGSIN",mode="rail",window="1h"} 12
corridor_shipment_teu_window{corridor="ILSTC",route="CNCKG-CNQZH-SGSIN",mode="rail",window="24h"} 300
corridor_shipment_teu_window{corridor="ILSTC",route="CNCKG-CNQZH-SGSIN",mode="rail",window="7d"} 1800
corridor_shipment_teu_window{corridor="ILSTC",route="CNQZH-SGSIN",mode="sea",window="1h"} 30
corridor_shipment_teu_window{corridor="ILSTC",route="CNQZH-SGSIN",mode="sea",window="24h"} 690
corridor_shipment_teu_window{corridor="ILSTC",route="CNQZH-SGSIN",mode="sea",window="7d"} 4830
# TYPE corridor_flights_window gauge
corridor_flights_window{route="CKG-SIN",service="passenger",window="24h"} 2
corridor_flights_window{route="CKG-SIN",service="passenger",window="7d"} 14
corridor_flights_window{route="CKG-SIN",service="cargo",window="24h"} 0
corridor_flights_window{route="CKG-SIN",service="cargo",window="7d"} 1
# TYPE corridor_finance_usd_window gauge
corridor_finance_usd_window{instrument="loan",window="24h"} 3000000
corridor_finance_usd_window{instrument="loan",window="7d"} 40500000
corridor_finance_usd_window{instrument="trade_finance",window="24h"} 1500000
corridor_finance_usd_window{instrument="trade_finance",window="7d"} 2250000000
# TYPE corridor_datachannel_bytes_window gauge
corridor_datachannel_bytes_window{link="CQ-SG-1",direction="cn_to_sg",window="5m"} 6e10
corridor_datachannel_bytes_window{link="CQ-SG-1",direction="cn_to_sg",window="1h"} 7.2e11
corridor_datachannel_bytes_window{link="CQ-SG-1",direction="cn_to_sg",window="24h"} 1.08e13
corridor_datachannel_bytes_window{link="CQ-SG-1",direction="cn_to_sg",window="7d"} 1.2e14
corridor_datachannel_bytes_window{link="CQ-SG-2",direction="sg_to_cn",window="5m"} 2.625e10
# TYPE corridor_events_received counter
corridor_events_received_total{stream="shipments"} 2000
corridor_events_received_total{stream="flights"} 50
corridor_events_received_total{stream="finance"} 7
corridor_events_received_total{stream="datachannel"} 4000
# TYPE corridor_events_accepted counter
corridor_events_accepted_total{stream="shipments"} 1990
corridor_events_accepted_total{stream="flights"} 50
corridor_events_accepted_total{stream="finance"} 7
corridor_events_accepted_total{stream="datachannel"} 3998
# TYPE corridor_events_rejected counter
corridor_events_rejected_total{stream="shipments",reason="out_of_range"} 6
corridor_events_rejected_total{stream="shipments",reason="invalid_json"} 1
corridor_events_rejected_total{stream="flights",reason="out_of_range"} 0
# TYPE corridor_events_duplicate counter
corridor_events_duplicate_total{stream="shipments"} 3
corridor_events_duplicate_total{stream="datachannel"} 2
# TYPE corridor_events_late counter
corridor_events_late_total{stream="shipments"} 1500
# TYPE corridor_consumer_lag gauge
corridor_consumer_lag{topic="corridor.shipments.v1",partition="0"} 5
corridor_consumer_lag{topic="corridor.shipments.v1",partition="3"} 7
corridor_consumer_lag{topic="corridor-monitor-state-shipments-changelog",partition="0"} 99
"""

INFO = RunInfo(
    metrics_url="http://127.0.0.1:6066/metrics",
    broker="127.0.0.1:9092 (embedded, memory storage, pid 41)",
    worker="pid 42, consumer group corridor-monitor",
    simulator="baseline at 3600x, 6,057 events published; live",
    uptime_s=3725,
)


@pytest.fixture
def snapshot() -> Snapshot:
    return Snapshot.from_text(METRICS)


def text_of(renderable: RenderableType) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def row(text: str, first: str, cells: int) -> list[str]:
    """``cells`` cells from the first cell ``first`` on the screen (cells are set apart by 2+ spaces)."""
    for line in text.splitlines():
        tokens = re.split(r" {2,}", line.strip())
        if first in tokens:
            start = tokens.index(first)
            return tokens[start : start + cells]
    raise AssertionError(f"no row {first!r} in\n{text}")


def test_snapshot_sums_over_the_labels_it_leaves_out(snapshot: Snapshot) -> None:
    assert snapshot.teu == {
        ("CNCKG-CNQZH-SGSIN",): {"1h": 52, "24h": 1300, "7d": 8800},
        ("CNQZH-SGSIN",): {"1h": 30, "24h": 690, "7d": 4830},
    }
    assert snapshot.flights[("CKG-SIN", "passenger")] == {"24h": 2, "7d": 14}
    assert snapshot.streams["shipments"] == StreamHealth(
        received=2000, accepted=1990, rejected=7, duplicate=3, late=1500, lag=12
    )
    # Lag of a topic that is not a family's (a changelog) is not a stream's.
    assert snapshot.pipeline_total().lag == 12
    assert snapshot.streams["finance"] == StreamHealth(received=7, accepted=7)


def test_view_shows_volumes_per_route_service_instrument_and_link(snapshot: Snapshot) -> None:
    text = text_of(render(snapshot, INFO))
    assert row(text, "CNCKG-CNQZH-SGSIN", 4) == ["CNCKG-CNQZH-SGSIN", "52", "1,300", "8,800"]
    assert row(text, "CNQZH-SGSIN", 4) == ["CNQZH-SGSIN", "30", "690", "4,830"]
    assert row(text, "CKG-SIN", 4) == ["CKG-SIN", "cargo", "0", "1"]  # rows sorted by name
    assert row(text, "passenger", 3) == ["passenger", "2", "14"]
    assert row(text, "loan", 3) == ["loan", "USD 3.00 m", "USD 40.5 m"]
    assert row(text, "trade_finance", 3) == ["trade_finance", "USD 1.50 m", "USD 2.25 bn"]
    # 6e10 bytes in 5 minutes is 1.6 Gbit/s; 1.08e13 in a day 1 Gbit/s.
    assert row(text, "CQ-SG-1", 5) == ["CQ-SG-1", "cn_to_sg", "1.60 Gbit/s", "1.00 Gbit/s", "120 TB"]
    # A window the worker does not export shows as a dash, not as zero.
    assert row(text, "CQ-SG-2", 5) == ["CQ-SG-2", "sg_to_cn", "700 Mbit/s", "–", "–"]


def test_view_totals_each_table(snapshot: Snapshot) -> None:
    text = text_of(render(snapshot, INFO))
    totals = [line.split() for line in text.splitlines() if line.strip().startswith("total")]
    # Shipments and financing (side by side), then the pipeline; flights have two rows, so a total too.
    assert totals[0][:4] == ["total", "82", "1,990", "13,630"]
    assert totals[0][4:] == ["total", "2", "15"]
    assert totals[1][:7] == ["total", "USD", "4.50", "m", "USD", "2.29", "bn"]
    assert totals[2] == ["total", "6,057", "6,045", "7", "5", "1,500", "12", "–"]


def test_pipeline_rows_and_rate_from_the_previous_snapshot(snapshot: Snapshot) -> None:
    earlier = METRICS.replace('accepted_total{stream="shipments"} 1990', 'accepted_total{stream="shipments"} 1790')
    previous = Snapshot.from_text(earlier)
    text = text_of(render(snapshot, INFO, previous, interval_s=2.0))
    assert row(text, "shipments", 8) == ["shipments", "2,000", "1,990", "7", "3", "1,500", "12", "100"]
    assert row(text, "datachannel", 8) == ["datachannel", "4,000", "3,998", "0", "2", "0", "0", "0"]
    assert row(text, "finance", 8) == ["finance", "7", "7", "0", "0", "0", "0", "0"]


def test_header_shows_the_addresses_and_uptime(snapshot: Snapshot) -> None:
    text = text_of(render(snapshot, INFO))
    assert "Corridor Monitor   up 1:02:05   running" in text
    assert row(text, "metrics", 2) == ["metrics", "http://127.0.0.1:6066/metrics"]
    assert row(text, "broker", 2) == ["broker", "127.0.0.1:9092 (embedded, memory storage, pid 41)"]
    assert "worker     pid 42, consumer group corridor-monitor" in text


def test_view_without_metrics_says_what_it_waits_for() -> None:
    info = RunInfo("http://127.0.0.1:1/metrics", "b", "w", "off", status="the worker is restoring its state")
    text = text_of(render(None, info))
    assert "the worker is restoring its state" in text
    assert "Pipeline" not in text


def test_summary_fields_and_line(snapshot: Snapshot) -> None:
    fields = summary_fields(snapshot)
    assert fields["teu_7d"] == 13630
    assert fields["flights_7d"] == 15
    assert fields["finance_usd_7d"] == 2_290_500_000
    assert fields["datachannel_bits_per_second_5m"] == pytest.approx(2.3e9)
    assert fields["events_rejected"] == 7
    assert summary_line(snapshot) == (
        "TEU 1h 82 24h 1,990 7d 13,630 | flights 7d 15 | financing 24h USD 4.50 m 7d USD 2.29 bn"
        " | data channel 5m 2.30 Gbit/s 24h 1.00 Gbit/s | events received 6,057 accepted 6,045 rejected 7"
        " duplicate 5 late 1,500 | lag 12"
    )


def test_summary_of_an_empty_worker() -> None:
    assert summary_line(Snapshot.from_text("")) == (
        "TEU 1h 0 24h 0 7d 0 | flights 7d 0 | financing 24h USD 0 7d USD 0"
        " | data channel 5m 0 bit/s 24h 0 bit/s | events received 0 accepted 0 rejected 0"
        " duplicate 0 late 0 | lag 0"
    )


def test_bits_per_second_is_the_average_over_the_window() -> None:
    assert bits_per_second(300 * 125_000_000, "5m") == 1e9
    assert bits_per_second(3600, "1h") == 8
