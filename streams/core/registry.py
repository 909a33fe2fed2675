"""The registry of known routes, carriers, links, corridors and countries; anything else is ``other``.

Metric labels come only from here, so a flood of new names cannot grow Prometheus'
series count: an unknown value maps to ``OTHER``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.common import Code, Country, IataCarrier, IataRoute, Identifier, LocodeRoute

OTHER = "other"
DEFAULT_REGISTRY = "registry.json"


class RegistryError(ValueError):
    """A registry file that cannot be read or does not describe a valid registry."""


class _ShipmentRoute(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    corridor: Code = Field(description="Corridor the route belongs to; must be listed under corridors.")
    description: str = ""


class _RegistryFile(BaseModel):
    """The registry file's layout: each section maps a label value to what it names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    corridors: dict[Code, str] = Field(min_length=1, description="corridor code -> description")
    shipment_routes: dict[LocodeRoute, _ShipmentRoute] = Field(description="UN/LOCODE route -> its corridor")
    flight_routes: dict[IataRoute, str] = Field(description="IATA route -> description")
    carriers: dict[IataCarrier, str] = Field(description="IATA airline designator -> name")
    links: dict[Identifier, str] = Field(description="data-channel link id -> description")
    countries: dict[Country, str] = Field(
        default_factory=dict, description="ISO 3166 alpha-2 code -> name (financing lender and borrower countries)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> _RegistryFile:
        for route, entry in self.shipment_routes.items():
            if entry.corridor not in self.corridors:
                raise ValueError(f"shipment route {route} names corridor {entry.corridor}, not listed under corridors")
        if OTHER in self.links:
            raise ValueError(f"links: {OTHER!r} is reserved for values not in the registry")
        return self


@dataclass(frozen=True, slots=True)
class Registry:
    """Known label values; the lookups return the value itself when known, else ``OTHER``."""

    corridors: Mapping[str, str]
    shipment_routes: Mapping[str, str]  # route -> corridor
    flight_routes: Mapping[str, str]
    carriers: Mapping[str, str]
    links: Mapping[str, str]
    countries: Mapping[str, str]

    @classmethod
    def load(cls, path: Path | str | None = None) -> Registry:
        """Read a registry file; ``None`` reads the one shipped with the package."""
        if path is None:
            source = resources.files(__package__).joinpath(DEFAULT_REGISTRY)
            name = f"built-in {DEFAULT_REGISTRY}"
        else:
            source = Path(path)
            name = str(path)
        try:
            raw = source.read_bytes()
        except OSError as error:
            raise RegistryError(f"registry file {name}: cannot be read ({error.strerror or error})") from None
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise RegistryError(f"registry file {name}: not valid JSON ({error})") from None
        try:
            parsed = _RegistryFile.model_validate(document)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'top level'}: {e['msg']}" for e in error.errors()
            )
            raise RegistryError(f"registry file {name}: {problems}") from None
        return cls(
            corridors=MappingProxyType(dict(parsed.corridors)),
            shipment_routes=MappingProxyType({r: e.corridor for r, e in parsed.shipment_routes.items()}),
            flight_routes=MappingProxyType(dict(parsed.flight_routes)),
            carriers=MappingProxyType(dict(parsed.carriers)),
            links=MappingProxyType(dict(parsed.links)),
            countries=MappingProxyType(dict(parsed.countries)),
        )

    def corridor(self, value: str) -> str:
        """The corridor label for a corridor code."""
        return value if value in self.corridors else OTHER

    def route(self, value: str) -> str:
        """The route label for a shipment route."""
        return value if value in self.shipment_routes else OTHER

    def flight_route(self, value: str) -> str:
        """The route label for a flight route."""
        return value if value in self.flight_routes else OTHER

    def carrier(self, value: str) -> str:
        """The carrier label for an airline designator."""
        return value if value in self.carriers else OTHER

    def link(self, value: str) -> str:
        """The link label for a data-channel link id."""
        return value if value in self.links else OTHER

    def country(self, value: str) -> str:
        """The country label for an ISO 3166 alpha-2 code."""
        return value if value in self.countries else OTHER

    def location(self, value: str) -> str:
        """The location label for a UN/LOCODE: the places the registry's shipment routes pass through."""
        return value if value in _places(frozenset(self.shipment_routes)) else OTHER

    def leg(self, start: str, end: str) -> str:
        """The leg label ``START-END`` for two places next to each other on a registry route, else ``other``."""
        leg = f"{start}-{end}"
        return leg if leg in _legs(frozenset(self.shipment_routes)) else OTHER


@lru_cache(maxsize=16)
def _places(routes: frozenset[str]) -> frozenset[str]:
    return frozenset(place for route in routes for place in route.split("-"))


@lru_cache(maxsize=16)
def _legs(routes: frozenset[str]) -> frozenset[str]:
    return frozenset(f"{a}-{b}" for route in routes for a, b in pairwise(route.split("-")))
