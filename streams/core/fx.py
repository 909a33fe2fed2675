"""Conversion of money amounts to whole US cents with a configured FX table, exactly."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal


class UnsupportedCurrency(ValueError):
    """The currency is not in the FX table."""

    def __init__(self, currency: str, supported: Mapping[str, Decimal]) -> None:
        self.currency = currency
        super().__init__(f"currency {currency!r} is not in the FX table (supported: {', '.join(sorted(supported))})")


class FxTable:
    """Units per US dollar by currency, each kept as an exact integer ratio for :meth:`usd_cents`."""

    def __init__(self, fx_per_usd: Mapping[str, Decimal]) -> None:
        self.fx_per_usd = fx_per_usd
        self._ratios: dict[str, tuple[int, int]] = {}
        for currency, rate in fx_per_usd.items():
            if not rate > 0:
                raise ValueError(f"FX rate for {currency} must be > 0 units per USD, got {rate}")
            self._ratios[currency] = Decimal(rate).as_integer_ratio()

    def usd_cents(self, amount: Decimal, currency: str) -> int:
        """``amount`` of ``currency`` in US cents: amount / units-per-USD, rounded half-even to a cent."""
        ratio = self._ratios.get(currency)
        if ratio is None:
            raise UnsupportedCurrency(currency, self.fx_per_usd)
        if not amount.is_finite():
            raise ValueError(f"amount must be finite, got {amount}")
        # Integer arithmetic on the exact ratios: Decimal division would round to the context's precision first.
        amount_num, amount_den = amount.as_integer_ratio()
        rate_num, rate_den = ratio
        numerator = amount_num * 100 * rate_den
        denominator = amount_den * rate_num
        cents, remainder = divmod(numerator, denominator)
        twice = 2 * remainder
        if twice > denominator or (twice == denominator and cents % 2):
            cents += 1
        return cents


def usd_cents(amount: Decimal, currency: str, fx_per_usd: Mapping[str, Decimal]) -> int:
    """``amount`` of ``currency`` in US cents: amount / units-per-USD, rounded half-even to a cent."""
    rate = fx_per_usd.get(currency)
    if rate is None:
        raise UnsupportedCurrency(currency, fx_per_usd)
    return FxTable({currency: rate}).usd_cents(amount, currency)
