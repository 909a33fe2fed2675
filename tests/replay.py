"""A generated replay data set with independently computed expected metrics.

The expected values are computed here by a naive reference (plain dicts, one event at a
time, straight from the rules of docs/semantics.md and the event contracts), not with the worker's own code.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import orjson
from aiokafka.partitioner import murmur2

from schemas.families import FAMILIES

KNOWN_ROUTES = {"CNCKG-CNQZH-SGSIN", "CNCKG-SGSIN", "CNCKG-VNHAN", "CNCKG-LAVTE", "CNQZH-SGSIN"}
KNOWN_FLIGHT_ROUTES = {"CKG-SIN"}
KNOWN_CARRIERS = {"TR", "3U", "SQ"}
KNOWN_LINKS = {"CQ-SG-1", "CQ-SG-2"}
KNOWN_CORRIDORS = {"ILSTC"}
KNOWN_COUNTRIES = {"SG", "CN", "VN"}  # of those drawn below; "KP" is not in the registry
FX = {"USD": Decimal("1"), "SGD": Decimal("1.3668"), "CNY": Decimal("7.0")}
HORIZON = 7 * 86400
PARTITIONS = 4
LATENESS = 300
FUTURE = 300
FLIGHT_DELAY_BOUNDS_MS = (0, 300_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 14_400_000, 43_200_000, 86_400_000)
LATENCY_BOUNDS_MS = (10, 25, 50, 100, 150, 200, 300, 500, 1000, 2500)
DAY_MS = 86_400_000
TRANSIT_BOUNDS_MS = tuple(days * DAY_MS for days in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 21, 28))
DWELL_BOUNDS_MS = (21_600_000, 43_200_000, DAY_MS, 129_600_000, 2 * DAY_MS, 3 * DAY_MS, 4 * DAY_MS, 5 * DAY_MS,
                   7 * DAY_MS, 10 * DAY_MS)
#: Seconds from planned_time a milestone is on time, and past planned_arrival a shipment is overdue (the defaults).
REFERENCE_TOLERANCE = {"rail": 6 * 3600, "sea": 86400, "rail_sea": 86400, "road": 7200, "air": 900}
SHIPMENT_HORIZON = 45 * 86400
KNOWN_PLACES = {place for route in KNOWN_ROUTES for place in route.split("-")}
KNOWN_LEGS = {f"{a}-{b}" for route in KNOWN_ROUTES for a, b in zip(route.split("-"), route.split("-")[1:])}
#: (window label, window seconds, bucket seconds), as documented in docs/semantics.md.
WINDOWS = (("5m", 300, 10), ("1h", 3600, 60), ("24h", 86400, 900), ("7d", 604800, 3600))


def iso(t: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(t, UTC).isoformat()


@dataclass
class Record:
    """One Kafka record to write: value bytes, key, partition, timestamp (seconds)."""

    family: str
    key: bytes | None
    value: bytes
    timestamp: float
    events: list[dict] = field(default_factory=list)  # the events as sent (valid or not)
    invalid: list[tuple[int | None, str]] = field(default_factory=list)  # (index, reason) of bad items

    def __post_init__(self) -> None:
        # Kafka keeps whole milliseconds: the model judges lateness on the timestamp the worker reads.
        self.timestamp = self.timestamp_ms / 1000

    @property
    def timestamp_ms(self) -> int:
        """The record's Kafka timestamp, in whole milliseconds (what producers send)."""
        return math.floor(round(self.timestamp * 1000, 3))


class ReplayData:
    """Builds records for all four families around wall-clock ``now``."""

    def __init__(self, now: float, seed: int = 7) -> None:
        self.now = now
        self.rng = random.Random(seed)
        self.records: list[Record] = []
        self._ids = 0
        self._journeys: list[dict] = []  # shipments in flight, each with the milestones it has yet to send

    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}-{self._ids:07d}"

    #: Seconds that stand for a day of a shipment's journey (data sets of recent events shrink their journeys).
    JOURNEY_DAY = 86400

    def _latest(self) -> float:
        """The latest event time a journey's milestone may have (later ones are not sent)."""
        return self.now - 60

    def _event_time(self) -> float:
        r = self.rng.random()
        if r < 0.5:
            return self.now - self.rng.uniform(0, 3600)
        if r < 0.8:
            return self.now - self.rng.uniform(0, 86400)
        return self.now - self.rng.uniform(0, 8 * 86400 - 600)

    def shipment(self) -> dict:
        """The next milestone of a shipment in flight (in order, one shipment's events in its route's
        partition), or the first of a new one; a few events name shipments never seen."""
        rng = self.rng
        if rng.random() < 0.03:
            return self._shipment_event(self._new_journey(), rng.choice(["customs_cleared", "delivered", "arrived"]),
                                        self._latest() - rng.uniform(0, 86400) * self.JOURNEY_DAY / 86400, None)
        while self._journeys and rng.random() < 0.85:
            journey = self._journeys[rng.randrange(len(self._journeys))]
            if journey["steps"]:
                milestone, t, location = journey["steps"].pop(0)
                return self._shipment_event(journey, milestone, t, location)
            self._journeys.remove(journey)
        journey = self._new_journey()
        self._journeys.append(journey)
        milestone, t, location = journey["steps"].pop(0)
        return self._shipment_event(journey, milestone, t, location)

    def _new_journey(self) -> dict:
        """A shipment's milestones: booked, departed, arrivals and departures at each place on the way, arrived
        at the destination, customs and delivery; times in order, the last before ``now``; some cancelled."""
        rng, day = self.rng, self.JOURNEY_DAY / 86400  # the journey's times, scaled to the data set's span
        latest = self._latest()
        route = rng.choice(sorted(KNOWN_ROUTES) + ["CNCKG-MYPKG", "CNNNG-THBKK"])
        places = route.split("-")
        v2 = rng.random() < 0.7  # a version 2 producer (location, planned times) or a version 1 one
        t = latest - rng.uniform(0.2, 8) * 86400 * day
        steps: list[tuple[str, float, str | None]] = [("booked", t, None)]
        if rng.random() < 0.05:
            steps.append(("cancelled", t + rng.uniform(60, 86400) * day, None))
        else:
            t += rng.uniform(600, 86400) * day
            steps.append(("departed", t, places[0] if v2 and rng.random() < 0.5 else None))
            for place in places[1:-1] if v2 else ():
                t += rng.uniform(3600, 2 * 86400) * day
                steps.append(("arrived", t, place))
                if rng.random() < 0.3:
                    steps.append(("transshipped", t + 60 * day, place))
                t += rng.uniform(600, 86400) * day
                steps.append(("departed", t, place))
            t += rng.uniform(3600, 3 * 86400) * day
            steps.append(("arrived", t, places[-1] if v2 and rng.random() < 0.5 else None))
            for milestone in ("customs_cleared", "delivered"):
                if rng.random() < 0.5:
                    t += rng.uniform(600, 86400) * day
                    steps.append((milestone, t, None))
        steps = [step for step in steps if step[1] < latest]
        planned = steps[0][1] + rng.uniform(0.5, 9) * 86400 * day
        mode = rng.choice(["rail", "sea", "rail_sea"])
        deadline = planned + REFERENCE_TOLERANCE[mode]
        if abs(deadline - self.now) < 2 * 3600:  # never overdue between the reference's now and a scrape's
            planned += 4 * 3600
        return {
            "shipment_id": f"S{rng.randrange(10**6)}", "corridor": rng.choice(["ILSTC", "ILSTC", "WLTC"]),
            "route": route, "mode": mode, "v2": v2, "planned_arrival": planned,
            "teu": rng.choice([1, 2, 2.5, 40, 0.25]), "gross_weight_kg": rng.choice([12000, 24500.5, 3000]),
            "steps": steps,
        }

    def _shipment_event(self, journey: dict, milestone: str, t: float, location: str | None) -> dict:
        rng = self.rng
        route = journey["route"]
        event = {
            "event_id": self._id("shp"), "event_time": iso(t), "source": "cq-rail-ops",
            "shipment_id": journey["shipment_id"], "corridor": journey["corridor"], "route": route,
            "mode": journey["mode"], "milestone": milestone, "teu": journey["teu"],
            "gross_weight_kg": journey["gross_weight_kg"], "origin": route.split("-")[0],
            "destination": route.split("-")[-1], "carrier": "CR Express",
        }
        if journey.get("v2"):
            if location is not None:
                event["location"] = location
            if milestone in ("booked", "departed") and rng.random() < 0.8:
                event["planned_arrival"] = iso(journey["planned_arrival"])
            if rng.random() < 0.6:
                event["planned_time"] = iso(t - rng.choice([-2 * 86400, -5 * 3600, -1800, 0, 600, 7 * 3600, 3 * 86400]))
            if rng.random() < 0.3:
                event |= {"equipment_id": "CSQU3054383", "equipment_size_type": "45G1", "empty": False,
                          "transport_id": "X8001"}
        return event

    def flight(self) -> dict:
        rng = self.rng
        t = self._event_time()
        status = rng.choice(["scheduled", "departed", "departed", "arrived", "cancelled"])
        event = {
            "event_id": self._id("flt"), "event_time": iso(t), "source": "changi-ops",
            "flight_id": f"F{rng.randrange(10**6)}", "carrier": rng.choice(["TR", "3U", "SQ", "MU"]),
            "flight_number": f"{rng.randrange(100, 999)}", "service": rng.choice(["passenger", "cargo"]),
            "route": rng.choice(["CKG-SIN", "CKG-SIN", "SIN-CKG"]), "status": status,
            "scheduled_time": iso(t - rng.choice([0, 600])),
        }
        if status == "departed":
            event["actual_time"] = iso(t - rng.choice([0, 600]) + rng.choice([-60, 0, 240, 1200, 5000]))
            event["passengers"] = rng.randrange(0, 300)
            event["cargo_kg"] = rng.choice([0, 1500, 2200.5])
        elif status == "arrived" and rng.random() < 0.8:
            # Reported on arrival, delays on both sides of OAG's 15 minutes, early arrivals included.
            actual = t - rng.choice([0, 120])
            event["actual_time"] = iso(actual)
            event["scheduled_time"] = iso(actual - rng.choice([-900, -60, 0, 899, 900, 2400, 20000]))
        return event

    def finance(self) -> dict:
        rng = self.rng
        return {
            "event_id": self._id("fin"), "event_time": iso(self._event_time()), "source": "mas-feed",
            "transaction_id": f"T{rng.randrange(10**6)}",
            "instrument": rng.choice(["loan", "syndicated_loan", "bond", "equity", "trade_finance", "reit"]),
            "amount": rng.choice([1000000, 2500000.55, 333333.33, 125000000]),
            "currency": rng.choice(["USD", "SGD", "CNY"]), "lender_country": rng.choice(["SG", "CN"]),
            "borrower_country": rng.choice(["CN", "SG", "VN", "KP"]),
            "status": rng.choice(["signed", "signed", "disbursed", "settled"]),
        }

    def datachannel(self) -> dict:
        rng = self.rng
        return {
            "event_id": self._id("dcs"), "event_time": iso(self._event_time()), "source": "cq-sg-probe",
            "link_id": rng.choice(["CQ-SG-1", "CQ-SG-2", "CQ-SG-9"]), "direction": rng.choice(["cn_to_sg", "sg_to_cn"]),
            "interval_seconds": 60, "bytes": rng.randrange(0, 10**9), "latency_ms": rng.choice([18.2, 35.5, 42, 120.7]),
            "packet_loss_ratio": 0.001,
        }

    MAKERS = {"shipments": shipment, "flights": flight, "finance": finance, "datachannel": datachannel}

    INVALID = (
        ("invalid_json", lambda e: b'{"event_id": "x", '),
        ("invalid_utf8", lambda e: b'{"event_id": "\xff\xfe"}'),
        ("not_an_event", lambda e: b"42"),
        ("empty_batch", lambda e: b"[]"),
        ("missing_field", lambda e: orjson.dumps({k: v for k, v in e.items() if k != "source"})),
        ("unknown_field", lambda e: orjson.dumps({**e, "colour": "red"})),
        ("naive_timestamp", lambda e: orjson.dumps({**e, "event_time": e["event_time"][:19]})),
        ("wrong_type", lambda e: orjson.dumps({**e, "event_id": 12345})),
    )

    def build(self, n_events: int) -> list[Record]:
        """Records holding about ``n_events`` events: envelopes and single events, 1% invalid."""
        rng = self.rng
        families = list(self.MAKERS)
        made = 0
        while made < n_events:
            family = rng.choice(families)
            maker = self.MAKERS[family]
            size = 1 if rng.random() < 0.3 else rng.randrange(5, 60)
            events = [maker(self) for _ in range(size)]
            made += len(events)
            key_field = FAMILIES[family].key_field
            by_key: dict[str, list[dict]] = defaultdict(list)
            for event in events:
                by_key[event[key_field]].append(event)
            for key, group in by_key.items():
                self._add(family, key, group)
        return self.records

    def _add(self, family: str, key: str, events: list[dict]) -> None:
        rng = self.rng
        newest = max(_ts(e["event_time"]) for e in events)
        delay = 3600.0 if rng.random() < 0.05 else rng.uniform(0, 30)
        timestamp = newest + delay
        roll = rng.random()
        if roll < 0.004:
            reason, make_bad = rng.choice(self.INVALID)
            self.records.append(Record(family, key.encode(), make_bad(events[0]), timestamp, [], [(None, reason)]))
            return
        invalid: list[tuple[int | None, str]] = []
        items: list[Any] = list(events)
        if roll < 0.01:
            index = rng.randrange(len(items))
            choice = rng.random()
            if choice < 0.4:
                bad = {**items[index], "event_time": iso(timestamp + 3 * 86400)}
                invalid.append((index, "future_event_time"))
            elif choice < 0.7:
                bad = {**items[index], "event_time": iso(timestamp - 9 * 86400)}
                invalid.append((index, "stale_event_time"))
            else:
                bad = {**items[index], "event_id": ""}
                invalid.append((index, "invalid_value"))
            items[index] = bad
        if len(items) == 1 and rng.random() < 0.5:
            value = orjson.dumps(items[0])
            invalid = [(None, r) for _, r in invalid]
        else:
            value = orjson.dumps(items)
        self.records.append(Record(family, key.encode(), value, timestamp, items, invalid))
        if rng.random() < 0.03:
            # A producer retry: the same record again, later.
            self.records.append(Record(family, key.encode(), value, timestamp + 5, items, list(invalid)))


def _ts(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value).timestamp()


def _half_even(value: Decimal, quantum: str) -> Decimal:
    return value.quantize(Decimal(quantum), rounding=ROUND_HALF_EVEN)


def _label(value: str, known: set[str]) -> str:
    return value if value in known else "other"


def _bucket(ms: int, bounds: tuple[int, ...]) -> int:
    for i, bound in enumerate(bounds):
        if ms <= bound:
            return i
    return len(bounds)


def partition_of(key: bytes, partitions: int = PARTITIONS) -> int:
    """The partition the default Kafka partitioner sends ``key`` to."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def rejections(records: list[Record]) -> list[list[tuple[int | None, str]]]:
    """Each record's rejected items: the malformed ones it was built with, plus those whose
    event_time is out of bounds.

    Event times are judged against the partition's clock, the newest record timestamp the
    partition has seen (this record's included): more than FUTURE after it is
    ``future_event_time``, more than HORIZON before it ``stale_event_time``.
    """
    timed = {"future_event_time", "stale_event_time"}
    clocks: dict[tuple[str, int], float] = {}
    out = []
    for record in records:
        place = (record.family, partition_of(record.key))
        clock = clocks[place] = max(clocks.get(place, record.timestamp), record.timestamp)
        invalid = [(index, reason) for index, reason in record.invalid if reason not in timed]
        whole_record_bad = any(index is None for index, _ in invalid)
        if record.events and not whole_record_bad:
            single = record.value[:1] == b"{"
            bad = {index for index, _ in invalid}
            for index, event in enumerate(record.events):
                t = _ts(event["event_time"])
                if index in bad:
                    continue
                if t > clock + FUTURE:
                    invalid.append((None if single else index, "future_event_time"))
                elif t < clock - HORIZON:
                    invalid.append((None if single else index, "stale_event_time"))
        out.append(invalid)
    return out


def expected_overdue(records: list[Record], now: float) -> list[dict]:
    """The overdue shipments the workers must list at ``now``: shipment_id, route and planned_arrival (ms)."""
    overdue: list[dict] = []
    expected_metrics(records, now, overdue)
    return overdue


def expected_metrics(records: list[Record], now: float,
                     overdue_out: list[dict] | None = None) -> dict[tuple[str, tuple], float]:
    """Every sample the worker must export, keyed by (name, sorted label items); ``overdue_out`` receives
    the overdue shipments."""
    out: dict[tuple[str, tuple], float] = {}
    counters: dict[str, Counter] = defaultdict(Counter)
    windows: dict[str, list[tuple[tuple, float, Decimal]]] = defaultdict(list)
    histograms: dict[str, dict[tuple, list[int]]] = defaultdict(dict)
    last_seen: dict[tuple, float] = {}
    pipeline: dict[str, Counter] = defaultdict(Counter)
    seen_ids: dict[str, set[str]] = defaultdict(set)
    journeys: dict[int, ReferenceJourneys] = defaultdict(ReferenceJourneys)  # by shipments partition
    clocks: dict[tuple[str, int], float] = {}

    for record, invalid in zip(records, rejections(records)):
        family = record.family
        place = (family, partition_of(record.key))
        clock = clocks[place] = max(clocks.get(place, record.timestamp), record.timestamp)
        bad = {index for index, _ in invalid}
        for _, reason in invalid:
            pipeline[family][("rejected", reason)] += 1
        if invalid and invalid[0][0] is None and not record.events:
            pipeline[family]["received"] += 1
            continue
        pipeline[family]["received"] += len(record.events)
        if invalid and invalid[0][0] is None:
            continue
        for index, event in enumerate(record.events):
            if index in bad:
                continue
            if event["event_id"] in seen_ids[family]:
                pipeline[family]["duplicate"] += 1
                continue
            seen_ids[family].add(event["event_id"])
            pipeline[family]["accepted"] += 1
            t = _ts(event["event_time"])
            if record.timestamp - LATENESS > t:  # the worker's comparison, float for float
                pipeline[family]["late"] += 1
            key = _apply(family, event, t, counters, windows, histograms)
            last_seen[(family, key)] = max(last_seen.get((family, key), float("-inf")), t)
            if family == "shipments":
                journeys[place[1]].apply(event, t, clock, counters, histograms)
        if family == "shipments":
            journeys[place[1]].evict(clock, counters)

    names = {
        "shipments": ("corridor_shipments_total", ("corridor", "route", "mode", "milestone")),
        "teu": ("corridor_shipment_teu_total", ("corridor", "route", "mode")),
        "weight": ("corridor_shipment_gross_weight_grams_total", ("corridor", "route", "mode")),
        "flights": ("corridor_flights_total", ("route", "carrier", "service", "status")),
        "passengers": ("corridor_flight_passengers_total", ("route", "carrier")),
        "cargo": ("corridor_flight_cargo_grams_total", ("route", "carrier")),
        "usd": ("corridor_finance_usd_total", ("instrument", "lender_country", "borrower_country")),
        "bytes": ("corridor_datachannel_bytes_total", ("link", "direction")),
        "loss_measured": ("corridor_datachannel_loss_measured_seconds_total", ("link", "direction")),
        "loss": ("corridor_datachannel_loss_seconds_total", ("link", "direction")),
        "punctuality": ("corridor_shipment_punctuality_total",
                        ("corridor", "route", "mode", "milestone", "punctuality")),
        "evicted": ("corridor_shipments_evicted_total", ("corridor", "route", "mode")),
        "flight_punctuality": ("corridor_flight_punctuality_total", ("route", "service", "punctuality")),
    }
    for metric, counter in counters.items():
        name, labels = names[metric]
        for values, total in counter.items():
            out[(name, tuple(sorted(zip(labels, values))))] = float(total)
    window_names = {
        "teu": ("corridor_shipment_teu_window", ("corridor", "route", "mode")),
        "flights": ("corridor_flights_window", ("route", "service")),
        "usd": ("corridor_finance_usd_window", ("instrument",)),
        "bytes": ("corridor_datachannel_bytes_window", ("link", "direction")),
    }
    for metric, items in windows.items():
        name, labels = window_names[metric]
        series = {values for values, _, _ in items}
        for label, seconds, bucket in WINDOWS:
            b_now = (now // bucket) * bucket
            sums: Counter = Counter({values: Decimal(0) for values in series})
            for values, t, value in items:
                b = (t // bucket) * bucket
                if b_now - seconds < b <= b_now:
                    sums[values] += value
            for values, total in sums.items():
                out[(name, tuple(sorted([*zip(labels, values), ("window", label)])))] = float(total)
    hist_names = {
        "delay": ("corridor_flight_delay_seconds", ("route", "service"), FLIGHT_DELAY_BOUNDS_MS),
        "arrival_delay": ("corridor_flight_arrival_delay_seconds", ("route", "service"), FLIGHT_DELAY_BOUNDS_MS),
        "latency": ("corridor_datachannel_latency_seconds", ("link",), LATENCY_BOUNDS_MS),
        "transit": ("corridor_shipment_transit_seconds", ("corridor", "route", "mode"), TRANSIT_BOUNDS_MS),
        "leg": ("corridor_shipment_leg_seconds", ("corridor", "route", "leg"), TRANSIT_BOUNDS_MS),
        "dwell": ("corridor_shipment_dwell_seconds", ("corridor", "route", "location"), DWELL_BOUNDS_MS),
    }
    for metric, by_labels in histograms.items():
        name, labels, bounds = hist_names[metric]
        for values, observations in by_labels.items():
            base = list(zip(labels, values))
            for bound in bounds:
                count = sum(1 for ms in observations if ms <= bound)
                le = _go_float(bound / 1000)
                out[(name + "_bucket", tuple(sorted([*base, ("le", le)])))] = float(count)
            out[(name + "_bucket", tuple(sorted([*base, ("le", "+Inf")])))] = float(len(observations))
            out[(name + "_count", tuple(sorted(base)))] = float(len(observations))
            out[(name + "_sum", tuple(sorted(base)))] = sum(observations) / 1000
    for (family, key), t in last_seen.items():
        out[("corridor_last_event_timestamp_seconds", (("key", key), ("stream", family)))] = t
    in_transit: Counter = Counter()
    overdue: Counter = Counter()
    for book in journeys.values():
        for journey in book.journeys.values():
            if journey["departed"] is not None:
                in_transit[journey["labels"]] += 1
            planned = journey["planned_arrival"]
            if planned is not None and planned + REFERENCE_TOLERANCE[journey["mode"]] * 1000 < now * 1000:
                overdue[journey["labels"]] += 1
                if overdue_out is not None:
                    overdue_out.append({"shipment_id": journey["shipment_id"], "route": journey["route"],
                                        "planned_arrival": planned})
    for name, gauge in (("corridor_shipments_in_transit", in_transit), ("corridor_shipments_overdue", overdue)):
        for values, count in gauge.items():
            out[(name, tuple(sorted(zip(("corridor", "route", "mode"), values))))] = float(count)
    for family, counts in pipeline.items():
        for name in ("received", "accepted", "duplicate", "late"):
            out[(f"corridor_events_{name}_total", (("stream", family),))] = float(counts[name])
        for k, v in counts.items():
            if isinstance(k, tuple):
                out[("corridor_events_rejected_total", (("reason", k[1]), ("stream", family)))] = float(v)
    return out


def _go_float(value: float) -> str:
    from prometheus_client.utils import floatToGoString

    return floatToGoString(value)


def _apply(family, event, t, counters, windows, histograms) -> str:
    if family == "shipments":
        route = _label(event["route"], KNOWN_ROUTES)
        corridor = _label(event["corridor"], KNOWN_CORRIDORS)
        counters["shipments"][(corridor, route, event["mode"], event["milestone"])] += 1
        if event["milestone"] == "departed" and event.get("location", event["origin"]) == event["origin"]:
            labels = (corridor, route, event["mode"])
            teu = Decimal(str(event["teu"]))
            counters["teu"][labels] += teu
            counters["weight"][labels] += Decimal(str(event["gross_weight_kg"])) * 1000  # grams
            windows["teu"].append((labels, t, teu))
        return route
    if family == "flights":
        route = _label(event["route"], KNOWN_FLIGHT_ROUTES)
        carrier = _label(event["carrier"], KNOWN_CARRIERS)
        counters["flights"][(route, carrier, event["service"], event["status"])] += 1
        if event["status"] == "departed":
            windows["flights"].append(((route, event["service"]), t, Decimal(1)))
            counters["passengers"][(route, carrier)] += event["passengers"]
            counters["cargo"][(route, carrier)] += Decimal(str(event["cargo_kg"])) * 1000  # grams
            delay = round((_ts(event["actual_time"]) - _ts(event["scheduled_time"])) * 1000)
            histograms["delay"].setdefault((route, event["service"]), []).append(delay)
        elif event["status"] == "arrived" and event.get("actual_time") is not None:
            delay = round((_ts(event["actual_time"]) - _ts(event["scheduled_time"])) * 1000)
            histograms["arrival_delay"].setdefault((route, event["service"]), []).append(delay)
            # OAG: on time when the flight arrives within 14 min 59 s of its schedule (early ones too).
            on_time = delay <= 14 * 60_000 + 59_999
            counters["flight_punctuality"][(route, event["service"], "on_time" if on_time else "late")] += 1
        elif event["status"] == "cancelled":
            counters["flight_punctuality"][(route, event["service"], "cancelled")] += 1  # not on time, for OAG
        return route
    if family == "finance":
        if event["status"] == "signed":
            usd = _half_even(Decimal(str(event["amount"])) / FX[event["currency"]], "0.01")
            lender = _label(event["lender_country"], KNOWN_COUNTRIES)
            borrower = _label(event["borrower_country"], KNOWN_COUNTRIES)
            counters["usd"][(event["instrument"], lender, borrower)] += usd
            windows["usd"].append(((event["instrument"],), t, usd))
        return event["instrument"]
    link = _label(event["link_id"], KNOWN_LINKS)
    counters["bytes"][(link, event["direction"])] += event["bytes"]
    windows["bytes"].append(((link, event["direction"]), t, Decimal(event["bytes"])))
    histograms["latency"].setdefault((link,), []).append(int(round(Decimal(str(event["latency_ms"])))))
    if event.get("packet_loss_ratio") is not None:
        seconds = Decimal(event["interval_seconds"])
        counters["loss_measured"][(link, event["direction"])] += seconds
        # the worker keeps microseconds, rounded half to even
        counters["loss"][(link, event["direction"])] += _half_even(seconds * Decimal(str(event["packet_loss_ratio"])),
                                                                    "0.000001")
    return link


class ReferenceJourneys:
    """Shipments in flight in one partition, straight from docs/semantics.md ("Transit, dwell and on time"):
    plain dicts, one accepted event at a time, times in whole milliseconds."""

    def __init__(self) -> None:
        self.journeys: dict[str, dict] = {}

    def evict(self, clock: float, counters) -> None:
        """Nothing heard for the horizon: gone, counted (event-time hours, against the partition's clock)."""
        cutoff = (clock - SHIPMENT_HORIZON) // 3600
        for shipment_id, journey in list(self.journeys.items()):
            if journey["newest"] // 3_600_000 < cutoff:
                del self.journeys[shipment_id]
                counters["evicted"][journey["labels"]] += 1

    def apply(self, event: dict, t: float, clock: float, counters, histograms) -> None:
        corridor, route = _label(event["corridor"], KNOWN_CORRIDORS), _label(event["route"], KNOWN_ROUTES)
        labels, milestone = (corridor, route, event["mode"]), event["milestone"]
        if event.get("planned_time") is not None:
            early = t - _ts(event["planned_time"])
            allowed = REFERENCE_TOLERANCE[event["mode"]]
            verdict = "late" if early > allowed else "early" if early < -allowed else "on_time"
            counters["punctuality"][(*labels, milestone, verdict)] += 1
        self.evict(clock, counters)
        at = round(t * 1000)
        place = event.get("location")
        if place is None:
            place = (event["origin"] if milestone in ("booked", "departed")
                     else event["destination"] if milestone in ("arrived", "customs_cleared", "delivered") else None)
        journey = self.journeys.get(event["shipment_id"])
        if journey is None:
            if milestone not in ("booked", "departed", "transshipped", "arrived"):
                return
            if milestone == "arrived" and place == event["destination"]:
                return
            journey = self.journeys[event["shipment_id"]] = {
                "shipment_id": event["shipment_id"], "route": event["route"], "labels": labels,
                "mode": event["mode"], "origin": event["origin"],
                "destination": event["destination"], "newest": at, "departed": None, "planned_arrival": None,
                "dwell": None, "leg": None,
            }
        journey["newest"] = max(journey["newest"], at)
        if milestone in ("cancelled", "delivered"):
            del self.journeys[event["shipment_id"]]
            return
        if milestone in ("booked", "departed") and event.get("planned_arrival") is not None:
            journey["planned_arrival"] = round(_ts(event["planned_arrival"]) * 1000)
        observe = histograms.setdefault
        labels = journey["labels"]  # a journey is measured under the labels of its first event
        if milestone == "departed":
            if place == journey["origin"] and (journey["departed"] is None or at < journey["departed"]):
                journey["departed"] = at
            if journey["dwell"] is not None and journey["dwell"][0] == place:
                if at >= journey["dwell"][1]:
                    location = _label(place, KNOWN_PLACES)
                    observe("dwell", {}).setdefault((labels[0], labels[1], location), []).append(
                        at - journey["dwell"][1])
                journey["dwell"] = None
            journey["leg"] = (place, at)
        elif milestone == "arrived":
            if journey["leg"] is not None and place is not None:
                start, since = journey["leg"]
                if place != start and at >= since:
                    leg = _label(f"{start}-{place}", KNOWN_LEGS)
                    observe("leg", {}).setdefault((labels[0], labels[1], leg), []).append(at - since)
                journey["leg"] = None
            if place == journey["destination"]:
                if journey["departed"] is not None and at >= journey["departed"]:
                    observe("transit", {}).setdefault(labels, []).append(at - journey["departed"])
                del self.journeys[event["shipment_id"]]
                return
            journey["dwell"] = (place, at)


#: Metric name prefixes the reference computes; anything else (lag, processing delay) is not compared.
CHECKED_PREFIXES = ("corridor_shipment", "corridor_flight", "corridor_finance", "corridor_datachannel",
                    "corridor_events_", "corridor_last_event")


def mismatches(samples: dict[tuple[str, tuple], float], expected: dict[tuple[str, tuple], float]) -> list[str]:
    """How exported samples differ from the expected ones (empty when they agree exactly)."""
    problems = []
    for key, value in sorted(expected.items()):
        got = samples.get(key)
        if got is None:
            if not (key[0].endswith("_window") and value == 0):
                problems.append(f"missing {key} (expected {value!r})")
        elif got != value and not (key[0].endswith("_sum") and math.isclose(got, value, rel_tol=1e-12)):
            # A histogram's sum is exact per series; summing the series of several partitions in
            # floating point (as a scrape's reader does) may differ from the exact total in the last digit.
            problems.append(f"{key}: got {got!r}, expected {value!r}")
    for key, value in sorted(samples.items()):
        if (key[0].startswith(CHECKED_PREFIXES) and not key[0].startswith("corridor_event_delay_seconds")
                and key not in expected and value != 0):
            problems.append(f"unexpected {key} = {value!r}")
    return problems
