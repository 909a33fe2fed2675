"""FX conversion to whole US cents: exact, half-even, and strict about currencies."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.core.fx import UnsupportedCurrency, usd_cents
from streams.settings import DEFAULT_FX_PER_USD

FX = DEFAULT_FX_PER_USD


def test_the_corridor_financing_figure():
    cents = usd_cents(Decimal("15.39e9"), "SGD", FX)
    assert cents == 1_125_987_708_516  # SGD 15,390,000,000 / 1.3668 = USD 11,259,877,085.162...
    assert round(cents / 100 / 1e9, 2) == 11.26


def test_usd_passes_through_to_the_cent():
    assert usd_cents(Decimal("11260000000"), "USD", FX) == 1_126_000_000_000
    assert usd_cents(Decimal("0.01"), "USD", FX) == 1


@pytest.mark.parametrize(
    ("amount", "cents"),
    [("0.004", 0), ("0.005", 0), ("0.006", 1), ("0.015", 2), ("0.025", 2), ("0.035", 4), ("-0.025", -2)],
)
def test_half_cents_round_to_even(amount, cents):
    assert usd_cents(Decimal(amount), "USD", FX) == cents


def test_rounding_is_exact_where_decimal_division_would_not_be():
    # Just above and below 2.5 cents: 28-digit Decimal arithmetic lands on the half and rounds to 2.
    rate = {"XTS": Decimal("1")}
    assert usd_cents(Decimal("0.02500000000000000000000000000000001"), "XTS", rate) == 3
    assert usd_cents(Decimal("0.02499999999999999999999999999999999"), "XTS", rate) == 2
    assert usd_cents(Decimal("1"), "XTS", {"XTS": Decimal("0.3")}) == 333


def test_a_currency_outside_the_table_is_refused():
    with pytest.raises(UnsupportedCurrency, match="'EUR' is not in the FX table \\(supported: CNY, SGD, USD\\)"):
        usd_cents(Decimal("1"), "EUR", FX)
    with pytest.raises(UnsupportedCurrency):
        usd_cents(Decimal("1"), "sgd", FX)


def test_bad_rates_and_amounts_are_refused():
    with pytest.raises(ValueError, match="must be > 0"):
        usd_cents(Decimal("1"), "SGD", {"SGD": Decimal("0")})
    with pytest.raises(ValueError, match="finite"):
        usd_cents(Decimal("NaN"), "USD", FX)


@given(
    amount=st.decimals(min_value=0, max_value=Decimal("1e15"), allow_nan=False, allow_infinity=False, places=6),
    rate=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("100000"), places=4),
)
def test_matches_exact_rational_rounding(amount, rate):
    # Python's round() on a Fraction rounds half to even, exactly.
    assert usd_cents(amount, "XTS", {"XTS": rate}) == round(Fraction(amount) * 100 / Fraction(rate))
