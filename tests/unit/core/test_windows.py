"""Rolling windows: bucket boundaries, lateness, expiry, snapshots, and a reference model."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.clock import ManualClock
from streams.core.windows import RollingWindows, WindowSpec, bucket_width, parse_window, window_specs

DEFAULT = window_specs(["5m", "1h", "24h", "7d"])
T0 = 1_700_006_400  # a whole number of days since the epoch
ROUTE = ("ILSTC", "CNCKG-CNQZH-SGSIN", "rail_sea")


def test_labels_parse_to_seconds():
    assert [parse_window(x) for x in ("90s", "5m", "1h", "24h", "7d")] == [90, 300, 3600, 86400, 604800]


@pytest.mark.parametrize("label", ["", "5", "m", "0m", "05m", "1.5h", "5M", "1w", "-5m", " 5m"])
def test_bad_labels_are_refused(label):
    with pytest.raises(ValueError, match="window"):
        parse_window(label)


def test_default_windows_get_the_documented_bucket_widths():
    assert [(s.label, s.seconds, s.bucket_seconds) for s in DEFAULT] == [
        ("5m", 300, 10),
        ("1h", 3600, 60),
        ("24h", 86400, 900),
        ("7d", 604800, 3600),
    ]
    assert [s.buckets for s in DEFAULT] == [30, 60, 96, 168]


@pytest.mark.parametrize("seconds", [1, 7, 29, 30, 90, 600, 1800, 7200, 21600, 2592000, 3601])
def test_bucket_width_divides_its_window(seconds):
    width = bucket_width(seconds)
    assert seconds % width == 0
    assert width == 1 or seconds // width >= 30


def test_a_repeated_label_is_refused():
    with pytest.raises(ValueError, match="twice"):
        window_specs(["5m", "1h", "5m"])


def test_event_at_now_counts_in_every_window():
    windows = RollingWindows(DEFAULT)
    windows.add(ROUTE, T0 + 5, 1000)
    assert windows.values(T0 + 5) == {ROUTE: {"5m": 1000, "1h": 1000, "24h": 1000, "7d": 1000}}


def test_window_start_boundary_follows_bucket_starts():
    spec = window_specs(["5m"])
    windows = RollingWindows(spec)
    # At now = T0 + 5 the current bucket starts at T0; the 5m window holds buckets (T0-300, T0].
    windows.add("a", T0 - 300, 1)  # bucket start T0-300: just outside
    windows.add("a", T0 - 290, 10)  # bucket start T0-290: the oldest bucket inside
    windows.add("a", T0 - 290.5, 100)  # bucket start T0-300: outside
    windows.add("a", T0 - 0.001, 1000)  # bucket start T0-10: inside
    assert windows.values(T0 + 5)["a"]["5m"] == 1010
    # At exactly now = T0 + 10 the whole window moves on by one bucket.
    assert windows.values(T0 + 9.999)["a"]["5m"] == 1010
    assert windows.values(T0 + 10)["a"]["5m"] == 1000


def test_event_exactly_at_a_bucket_start_belongs_to_that_bucket():
    windows = RollingWindows(window_specs(["5m"]))
    windows.add("a", T0 + 10, 7)
    assert windows.values(T0 + 9.999)["a"]["5m"] == 0
    assert windows.values(T0 + 10)["a"]["5m"] == 7
    # the bucket at T0+10 leaves the window when now reaches T0+310
    assert windows.values(T0 + 309.999)["a"]["5m"] == 7
    assert windows.values(T0 + 310)["a"]["5m"] == 0


def test_future_events_count_only_once_now_reaches_their_bucket():
    windows = RollingWindows(DEFAULT)
    windows.add(ROUTE, T0 + 120, 5)
    assert windows.values(T0 - 0.5)[ROUTE] == {"5m": 0, "1h": 0, "24h": 0, "7d": 0}
    # The 15m and 1h buckets starting at T0 hold T0+120: they count from T0 on, the
    # 10s and 1m buckets only from T0+120.
    assert windows.values(T0)[ROUTE] == {"5m": 0, "1h": 0, "24h": 5, "7d": 5}
    assert windows.values(T0 + 119.9)[ROUTE] == {"5m": 0, "1h": 0, "24h": 5, "7d": 5}
    assert windows.values(T0 + 120)[ROUTE] == {"5m": 5, "1h": 5, "24h": 5, "7d": 5}


def test_late_event_updates_only_the_windows_still_covering_its_bucket():
    clock = ManualClock(T0 + 3 * 3600)
    windows = RollingWindows(DEFAULT)
    windows.add(ROUTE, clock.now(), 1)
    windows.expire(clock.now())
    windows.add(ROUTE, T0, 10)  # three hours late
    assert windows.values(clock.now())[ROUTE] == {"5m": 1, "1h": 1, "24h": 11, "7d": 11}


def test_event_older_than_the_longest_window_is_dropped_from_windows():
    now = T0 + 8 * 86400
    windows = RollingWindows(DEFAULT)
    windows.expire(now)
    windows.add(ROUTE, T0, 10)
    windows.add(ROUTE, now - 604800 + 3600, 1)  # the oldest 7d bucket at now
    assert windows.values(now)[ROUTE] == {"5m": 0, "1h": 0, "24h": 0, "7d": 1}
    oldest_hour = (now - 604800 + 3600) // 3600
    assert windows.to_state()["series"] == [[list(ROUTE), {"10": [], "60": [], "900": [], "3600": [oldest_hour, 1]}]]


def test_windows_fall_to_zero_as_a_silent_key_ages():
    clock = ManualClock(T0)
    windows = RollingWindows(DEFAULT)
    windows.add_many([(ROUTE, T0 - 30, 2), (("ILSTC", "CNCKG-SGSIN", "sea"), T0 - 30, 3)])
    expected = [
        (0, {"5m": 2, "1h": 2, "24h": 2, "7d": 2}),
        (300, {"5m": 0, "1h": 2, "24h": 2, "7d": 2}),
        (3600, {"5m": 0, "1h": 0, "24h": 2, "7d": 2}),
        (86400, {"5m": 0, "1h": 0, "24h": 0, "7d": 2}),
        (604800, {"5m": 0, "1h": 0, "24h": 0, "7d": 0}),
    ]
    for offset, sums in expected:
        clock.set(T0 + offset)
        windows.expire(clock.now())
        assert windows.values(clock.now())[ROUTE] == sums
    assert windows.to_state()["series"][0][1] == {"10": [], "60": [], "900": [], "3600": []}


def test_memory_is_bounded_by_buckets_not_events():
    windows = RollingWindows(DEFAULT)
    for minute in range(0, 14 * 24 * 60, 7):
        t = T0 + minute * 60
        windows.add_many([(ROUTE, t + s, 1) for s in range(0, 60, 20)])
        windows.expire(t)
    per_width = windows.to_state()["series"][0][1]
    assert {w: len(flat) // 2 for w, flat in per_width.items()} == {"10": 3, "60": 9, "900": 96, "3600": 168}


def test_batch_is_order_independent_and_equals_single_adds():
    events = [(("k", i % 3), T0 - 37 * i + 0.25, i * 11) for i in range(400)]
    one_by_one = RollingWindows(DEFAULT)
    for event in events:
        one_by_one.add(*event)
    batched = RollingWindows(DEFAULT)
    batched.add_many(reversed(events))
    assert batched.values(T0) == one_by_one.values(T0)
    assert sum(v["24h"] for v in batched.values(T0).values()) == sum(i * 11 for i in range(400))


def test_snapshot_round_trip_through_json():
    windows = RollingWindows(DEFAULT)
    windows.add_many([(ROUTE, T0 - i * 977.5, i) for i in range(700)])
    windows.add("solo", T0 + 30, 4)
    windows.expire(T0)
    restored = RollingWindows.from_state(DEFAULT, orjson.loads(orjson.dumps(windows.to_state())))
    for now in (T0, T0 + 60, T0 + 4000, T0 + 90000):
        assert restored.values(now) == windows.values(now)
    assert restored.to_state() == windows.to_state()


def test_snapshot_keeps_buckets_only_for_widths_still_configured():
    windows = RollingWindows(window_specs(["5m", "1h"]))
    windows.add("a", T0, 3)
    restored = RollingWindows.from_state(window_specs(["1h", "7d"]), windows.to_state())
    assert restored.values(T0) == {"a": {"1h": 3, "7d": 0}}


def test_snapshot_of_another_format_is_refused():
    with pytest.raises(ValueError, match="format"):
        RollingWindows.from_state(DEFAULT, {"format": 99, "series": []})


def test_a_batch_with_a_non_finite_time_changes_nothing():
    windows = RollingWindows(DEFAULT)
    windows.add("a", T0, 1)
    with pytest.raises(ValueError):
        windows.add_many([("a", T0, 5), ("b", T0, 5), ("c", float("nan"), 1)])
    assert windows.values(T0) == {"a": {"5m": 1, "1h": 1, "24h": 1, "7d": 1}}


def test_a_copy_keeps_the_values_and_is_independent():
    windows = RollingWindows(DEFAULT)
    for i in range(300):
        windows.add(("k", str(i % 4)), T0 - 53 * i, i)
    windows.expire(T0)
    twin = windows.copy()
    assert twin.values(T0) == windows.values(T0) and twin.to_state() == windows.to_state()
    before = windows.values(T0)
    twin.add(("k", "0"), T0, 1000)
    twin.expire(T0 + 86_400)
    assert windows.values(T0) == before
    windows.add(("k", "9"), T0, 5)
    assert ("k", "9") not in twin.values(T0 + 86_400)


# A reference model: filter the raw events by the documented rule.
SMALL_LABELS = ["30s", "2m", "5m", "1h"]
Event = tuple[str, float, int]


def reference(specs: tuple[WindowSpec, ...], events: list[Event], now: float) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for series, _, _ in events:
        out.setdefault(series, {s.label: 0 for s in specs})
    for spec in specs:
        g = spec.bucket_seconds
        b_now = (now // g) * g
        for series, t, value in events:
            if b_now - spec.seconds < (t // g) * g <= b_now:
                out[series][spec.label] += value
    return out


# Times on 1m and 10s grid lines hit window edges often; the rest land anywhere.
times = st.one_of(
    st.integers(0, 133).map(lambda k: k * 60.0),
    st.integers(0, 800).map(lambda k: k * 10.0),
    st.integers(0, 8000).map(float),
    st.floats(0, 8000, allow_nan=False),
)
events_strategy = st.lists(st.tuples(st.sampled_from("abc"), times, st.integers(-5, 10**6)), max_size=60)


@settings(max_examples=150, deadline=None)
@given(
    labels=st.lists(st.sampled_from(SMALL_LABELS), min_size=1, max_size=4, unique=True),
    events=events_strategy,
    cuts=st.lists(st.integers(0, 60), max_size=4),
    nows=st.lists(times, min_size=1, max_size=4),
    via_snapshot=st.booleans(),
)
def test_values_match_the_reference_whatever_the_batching(labels, events, cuts, nows, via_snapshot):
    specs = window_specs(labels)
    nows = sorted(nows)
    windows = RollingWindows(specs)
    # Feed the events in batches, expiring at the first reading time along the way.
    bounds = sorted({0, len(events), *(c for c in cuts if c <= len(events))})
    for start, end in zip(bounds, bounds[1:]):
        windows.add_many(events[start:end])
        windows.expire(nows[0])
        if via_snapshot:
            windows = RollingWindows.from_state(specs, orjson.loads(orjson.dumps(windows.to_state())))
    for now in nows:
        expected = reference(specs, events, now)
        assert windows.values(now) == expected
        windows.expire(now)
        assert windows.values(now) == expected
