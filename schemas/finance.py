"""Cross-border financing transactions along the corridor."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import Field

from schemas.common import BaseEvent, Country, Currency, DecimalNumber, Identifier, Label


class Instrument(StrEnum):
    """Kind of financing."""

    LOAN = "loan"
    SYNDICATED_LOAN = "syndicated_loan"
    BOND = "bond"
    EQUITY = "equity"
    TRADE_FINANCE = "trade_finance"
    REIT = "reit"
    OTHER = "other"


class FinanceStatus(StrEnum):
    """Stage of the transaction."""

    SIGNED = "signed"
    DISBURSED = "disbursed"
    SETTLED = "settled"
    CANCELLED = "cancelled"


class FinanceEvent(BaseEvent):
    """A financing transaction changed stage; amounts count towards volume on "signed"."""

    family: ClassVar[str] = "finance"
    fx_currency_fields: ClassVar[tuple[str, ...]] = ("currency",)

    transaction_id: Identifier = Field(description="Transaction identifier.")
    instrument: Instrument = Field(description="Financing instrument.")
    amount: Annotated[Decimal, DecimalNumber(gt=Decimal(0))] = Field(
        description="Amount (> 0) in `currency`, as a JSON number."
    )
    currency: Currency = Field(description="ISO 4217 currency of the amount; must be in the configured FX table.")
    lender_country: Country = Field(description="ISO 3166-1 alpha-2 country of the lender, e.g. SG.")
    borrower_country: Country = Field(description="ISO 3166-1 alpha-2 country of the borrower, e.g. CN.")
    status: FinanceStatus = Field(description="Stage the transaction reached.")
    borrower_region: Label | None = Field(None, description="Region of the borrower, e.g. Chongqing.")


def example(now: datetime) -> dict[str, Any]:
    """A valid event's fields with realistic corridor values (no event_id or event_time)."""
    return {
        "source": "sg-bank-trade-desk",
        "transaction_id": "CCI-FIN-" + uuid.uuid4().hex[:8].upper(),
        "instrument": "syndicated_loan",
        "amount": 150_000_000.0,
        "currency": "SGD",
        "lender_country": "SG",
        "borrower_country": "CN",
        "status": "signed",
        "borrower_region": "Chongqing",
    }
