"""The base event model and the field types every event family shares."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Strict,
    StringConstraints,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

#: Largest money amount accepted: JSON numbers are IEEE doubles, exact to about 15 digits.
MAX_AMOUNT = Decimal("1e15")

_TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
_OFFSET = r"(Z|[+-][0-9]{2}:?[0-9]{2})"
#: ISO 8601 date-time with a mandatory UTC offset: ``Z``, ``+08:00`` or ``+0800``.
AWARE_TIMESTAMP_PATTERN = f"{_TIMESTAMP}{_OFFSET}$"


def _to_utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError("timestamp_format", "Input should be a date-time that exists in UTC") from None


def utc_iso(moment: datetime) -> str:
    """``moment`` in ISO 8601 with a ``Z`` suffix, the way events carry timestamps."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


#: Union branch labels of a timestamp's JSON validator; errors of the UTC branch repeat
#: those of the general one, so error reports keep only the latter.
UTC_BRANCH = "utc"
AWARE_BRANCH = "aware"


class UtcTimestamp:
    """A timezone-aware ISO 8601 timestamp, normalised to UTC; a naive one is an error."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        aware = core_schema.chain_schema(
            [core_schema.datetime_schema(tz_constraint="aware"), core_schema.no_info_plain_validator_function(_to_utc)]
        )
        # Timestamps already in UTC pass in Rust alone; only other offsets pay for a
        # Python conversion. The pattern keeps out what pydantic would also accept
        # (digit strings as Unix time, "_" or "t" separators).
        from_json = core_schema.chain_schema(
            [
                core_schema.custom_error_schema(
                    core_schema.str_schema(strict=True),
                    "timestamp_type",
                    custom_error_message="Input should be a date-time string",
                ),
                core_schema.custom_error_schema(
                    core_schema.str_schema(pattern=f"{_TIMESTAMP}{_OFFSET}?$"),
                    "timestamp_format",
                    custom_error_message="Input should be ISO 8601 with a UTC offset, e.g. 2024-05-01T08:00:00Z",
                ),
                core_schema.union_schema(
                    [(core_schema.datetime_schema(tz_constraint=0), UTC_BRANCH), (aware, AWARE_BRANCH)],
                    mode="left_to_right",
                ),
            ]
        )
        return core_schema.json_or_python_schema(
            json_schema=from_json,
            python_schema=core_schema.chain_schema([core_schema.datetime_schema(strict=True), aware]),
            serialization=core_schema.simple_ser_schema("datetime"),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "format": "date-time", "pattern": AWARE_TIMESTAMP_PATTERN}


UtcDatetime = Annotated[datetime, UtcTimestamp()]

#: Producer-assigned identifier: 1-128 printable ASCII characters, no spaces.
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[!-~]+$")]

#: Free-text name (a carrier, a system, a region): 1-64 characters, no control
#: characters, no leading or trailing space. ASCII ranges rather than ``\s`` so that
#: every regex engine (Rust, Python, ECMA) reads the JSON Schema pattern alike.
Label = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x20\x7f]([^\x00-\x1f\x7f]*[^\x00-\x20\x7f])?$"),
]

#: Short upper-case code such as a corridor name (``ILSTC``).
Code = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_-]{1,15}$")]

#: UN/LOCODE: ISO 3166 country (2 letters) + 3 location characters, e.g. ``CNCKG``.
UnLocode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}[A-Z0-9]{3}$")]

#: 2 to 10 UN/LOCODEs joined by ``-``, e.g. ``CNCKG-CNQZH-SGSIN``.
LocodeRoute = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}[A-Z0-9]{3}(-[A-Z]{2}[A-Z0-9]{3}){1,9}$")]

#: 2 to 6 IATA airport codes joined by ``-``, e.g. ``CKG-SIN``.
IataRoute = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}(-[A-Z]{3}){1,5}$")]

#: IATA airline designator: two characters, letters or digits, e.g. ``TR`` or ``3U``.
IataCarrier = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2}$")]

#: ISO 4217 currency code, e.g. ``SGD``.
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]

#: ISO 3166-1 alpha-2 country code, e.g. ``SG``.
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]

#: JSON integer only (no strings, floats or booleans).
Integer = Annotated[int, Strict()]

#: JSON number only (no strings or booleans); NaN and Infinity are rejected by the base model.
Number = Annotated[float, Strict()]


class DecimalNumber:
    """A ``Decimal`` that arrives as a JSON number (never a string) and is written back as one."""

    def __init__(self, *, gt: Decimal | None = None, ge: Decimal | None = None, le: Decimal = MAX_AMOUNT) -> None:
        self.gt, self.ge, self.le = gt, ge, le

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        decimal = core_schema.decimal_schema(strict=False, allow_inf_nan=False, gt=self.gt, ge=self.ge, le=self.le)
        # A JSON number reaches the validator as a float; a strict float step first
        # keeps strings out (a lax decimal would accept "12.5").
        json_number = core_schema.float_schema(strict=True, allow_inf_nan=False)
        return core_schema.json_or_python_schema(
            json_schema=core_schema.chain_schema([json_number, decimal]),
            python_schema=decimal,
            serialization=core_schema.plain_serializer_function_ser_schema(
                float, when_used="json", return_schema=core_schema.float_schema()
            ),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        bounds = {"exclusiveMinimum": self.gt, "minimum": self.ge, "maximum": self.le}
        return {"type": "number"} | {keyword: float(bound) for keyword, bound in bounds.items() if bound is not None}


class BaseEvent(BaseModel):
    """Fields every corridor event carries; a frozen model that rejects unknown fields."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
    )

    #: Event family name (``shipments``, ``flights``, ``finance``, ``datachannel``).
    family: ClassVar[str]
    #: Fields holding a currency that must be in the FX table (checked by the validator).
    fx_currency_fields: ClassVar[tuple[str, ...]] = ()

    event_id: Identifier = Field(description="Producer-assigned unique id of this event; the deduplication key.")
    event_time: UtcDatetime = Field(
        description="When the event happened: ISO 8601 with a UTC offset (naive times are refused); stored in UTC."
    )
    source: Label = Field(description="The producing system, e.g. a terminal, rail operator, airline or bank feed.")
