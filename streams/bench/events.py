"""Benchmark traffic: the simulator's corridor events, stamped with fresh ids and recent event times.

The field values, and so the sizes, are the simulator's (``streams/sim/simulator.py``); the
bench only draws them in a fixed family mix, gives every event an ``event_id`` no other
event of the run has, and dates it within :data:`SPREAD_S` seconds before it is published,
so that the workers neither reject it (dedup horizon, future tolerance) nor count it late.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import string
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol

import orjson

from schemas.families import FAMILIES
from streams.core.registry import DEFAULT_REGISTRY
from streams.sim.simulator import Scenario, SimulationConfig, generate

#: Events of each family in every 20: the data channel's samples and the shipments' milestones
#: dominate as in the simulated corridor, with flights and financing raised to one in 20 each
#: so that every family's validation and measures weigh in.
MIX: Mapping[str, int] = {"datachannel": 11, "shipments": 7, "flights": 1, "finance": 1}
#: Distinct simulated events per family that the bench's events are copies of.
TEMPLATES_PER_FAMILY = 1_000
#: Event times lie up to this many seconds before the moment the event is made.
SPREAD_S = 30
#: Events per batch envelope, as the producer SDK packs them (CORRIDOR_PUBLISH_BATCH_EVENTS).
ENVELOPE_EVENTS = 500

# Where the simulated calendar of the templates begins (any fixed moment: only the spacing of
# an event's own timestamps is kept).
_TEMPLATE_START = datetime(2020, 4, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Template:
    """A simulated event the bench copies: everything but its id and timestamps, which each copy gets anew."""

    family: str
    key: bytes  #: the message key: the family's key field
    event_id: str
    fields: Mapping[str, Any]
    #: Further timestamps (a flight's scheduled and actual times, a shipment's planned time and arrival), in
    #: seconds after ``event_time``.
    times: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class Event:
    """One event of the bench, ready to serialise."""

    family: str
    key: bytes
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka message: a single event (a JSON object) or an envelope (a JSON array) of one family and key."""

    family: str
    key: bytes
    value: bytes
    events: int

    @property
    def topic(self) -> str:
        return FAMILIES[self.family].topic


def templates(family: str, seed: int, count: int = TEMPLATES_PER_FAMILY) -> list[Template]:
    """The first ``count`` events of a simulation of ``family`` alone."""
    config = SimulationConfig(Scenario.BASELINE, seed=seed, start=_TEMPLATE_START, families=(family,))
    key_field = FAMILIES[family].key_field
    made = []
    for _, event in itertools.islice(generate(config, None), count):
        event_time = datetime.fromisoformat(event.pop("event_time"))
        times = tuple(
            (name, (datetime.fromisoformat(event.pop(name)) - event_time).total_seconds())
            for name in [name for name, value in event.items()
                         if name.endswith(("_time", "planned_arrival")) and isinstance(value, str)]
        )
        event_id = event.pop("event_id")
        made.append(Template(family, str(event[key_field]).encode(), event_id, event, times))
    return made


def family_cycle(seed: int, mix: Mapping[str, int] = MIX) -> tuple[str, ...]:
    """The order in which families take turns: each as often as ``mix`` says, shuffled with ``seed``."""
    slots = [family for family, share in mix.items() for _ in range(share)]
    random.Random(seed).shuffle(slots)  # noqa: S311 - a reproducible order, not a secret
    return tuple(slots)


class EventSource:
    """Endless events of the :data:`MIX`: every ``event_id`` unique within the source, event times recent."""

    def __init__(self, seed: int = 0, per_family: int = TEMPLATES_PER_FAMILY, mix: Mapping[str, int] = MIX) -> None:
        self.pools = {family: templates(family, seed, per_family) for family in mix}
        self.cycle = family_cycle(seed, mix)
        #: In every event id: runs with another seed never reuse an id.
        self.tag = hashlib.blake2b(f"corridor-bench/{seed}".encode(), digest_size=3).hexdigest()
        self.made = 0
        self._taken = dict.fromkeys(mix, 0)
        self._stamps: dict[int, str] = {}

    def take(self, count: int, now: float) -> list[Event]:
        """The next ``count`` events, dated up to :data:`SPREAD_S` seconds before ``now`` (Unix seconds)."""
        events = []
        cycle, pools, taken, tag = self.cycle, self.pools, self._taken, self.tag
        for number in range(self.made, self.made + count):
            family = cycle[number % len(cycle)]
            pool = pools[family]
            template = pool[taken[family] % len(pool)]
            taken[family] += 1
            moment = int(now) - number % SPREAD_S
            fields = {"event_id": f"{template.event_id}/b{tag}-{number}", "event_time": self._stamp(moment),
                      **template.fields}
            for name, after in template.times:
                fields[name] = self._stamp(moment + round(after))
            events.append(Event(family, template.key, fields))
        self.made += count
        return events

    def _stamp(self, moment: int) -> str:
        stamp = self._stamps.get(moment)
        if stamp is None:
            if len(self._stamps) > 100_000:
                self._stamps.clear()
            stamp = self._stamps[moment] = datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")
        return stamp


def shipment_routes(count: int) -> list[str]:
    """``count`` distinct rail-sea routes to Singapore, ``CNAAA-SGSIN``, ``CNAAB-SGSIN``, ..."""
    codes = ("".join(letters) for letters in itertools.product(string.ascii_uppercase, repeat=3))
    return [f"CN{code}-SGSIN" for code in itertools.islice(codes, count)]


def registry_with_routes(routes: Sequence[str]) -> bytes:
    """The built-in registry (``streams/core/registry.json``) with ``routes`` as its only shipment routes."""
    registry = orjson.loads(resources.files("streams.core").joinpath(DEFAULT_REGISTRY).read_bytes())
    registry["shipment_routes"] = {route: {"corridor": "ILSTC", "description": route} for route in routes}
    return orjson.dumps(registry, option=orjson.OPT_INDENT_2)


class Reshape(Protocol):
    """What a stage does to the run's events before they are published (:class:`RouteSpread`, :class:`OwnShipments`)."""

    def apply(self, events: Iterable[Event]) -> list[Event]: ...


@dataclass
class RouteSpread:
    """Moves shipments onto ``routes`` in turn (origin and destination with them), keyed by their new route."""

    routes: Sequence[str]
    _next: int = 0

    def apply(self, events: Iterable[Event]) -> list[Event]:
        spread = []
        for event in events:
            if event.family == "shipments":
                route = self.routes[self._next % len(self.routes)]
                self._next += 1
                fields = {**event.fields, "route": route, "origin": route[:5], "destination": route[-5:]}
                event = Event(event.family, route.encode(), fields)
            spread.append(event)
        return spread


#: Shipment fields that would move a milestone away from its default place or carry an ETA (which only
#: ``booked`` and ``departed`` may): left out by :class:`OwnShipments`, so both milestones it makes carry
#: the same fields.
_PLACE_AND_ETA = ("location", "planned_arrival")


@dataclass
class OwnShipments:
    """Makes every shipment ``milestone`` of a shipment no other event names (``SHP-bench-000000001``, ...),
    at the contract's default place for it, keyed by its route as before.

    As ``departed`` each event opens a journey the worker keeps in flight; as ``customs_cleared``
    the same events are validated and counted but open none.
    """

    milestone: str
    _next: int = 0

    def apply(self, events: Iterable[Event]) -> list[Event]:
        made = []
        for event in events:
            if event.family == "shipments":
                self._next += 1
                fields = {name: value for name, value in event.fields.items() if name not in _PLACE_AND_ETA}
                fields |= {"milestone": self.milestone, "shipment_id": f"SHP-bench-{self._next:09d}"}
                event = Event(event.family, event.key, fields)
            made.append(event)
        return made


def single_records(events: Iterable[Event]) -> Iterator[Record]:
    """One record per event, a plain JSON object, as third-party producers send."""
    for event in events:
        yield Record(event.family, event.key, orjson.dumps(event.fields), 1)


@dataclass
class Envelopes:
    """Packs events into JSON-array envelopes by family and key, ``size`` events each, as the SDK batches.

    ``add`` returns the envelopes it filled; ``flush`` the partly filled rest.
    """

    size: int = ENVELOPE_EVENTS
    _pending: dict[tuple[str, bytes], list[bytes]] = field(default_factory=dict)

    def add(self, events: Iterable[Event]) -> list[Record]:
        full = []
        for event in events:
            slot = (event.family, event.key)
            pending = self._pending.setdefault(slot, [])
            pending.append(orjson.dumps(event.fields))
            if len(pending) >= self.size:
                full.append(_envelope(slot, pending))
                del self._pending[slot]
        return full

    def flush(self) -> list[Record]:
        records = [_envelope(slot, pending) for slot, pending in self._pending.items()]
        self._pending.clear()
        return records


def _envelope(slot: tuple[str, bytes], events: list[bytes]) -> Record:
    family, key = slot
    return Record(family, key, b"[" + b",".join(events) + b"]", len(events))


def envelope_bytes(record: Record) -> int:
    """The JSON bytes of the events a record carries (an envelope's brackets and commas left out)."""
    return len(record.value) - (record.events + 1 if record.value[:1] == b"[" else 0)
