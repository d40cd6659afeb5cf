"""money(): the decimal string every platform's amounts become, fast path and slow path alike."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.errors import InvalidPayload
from bridge.platforms._common import money

_AMOUNTS = st.decimals(
    min_value=Decimal(-(10**15) + 1), max_value=Decimal(10**15 - 1), places=6, allow_nan=False
)


def _reference(text: str) -> str:
    """What money() means for a numeric string: Decimal, six places half-even, no -0."""
    amount = Decimal(text)
    if amount.as_tuple().exponent < -6:  # type: ignore[operator]  # finite: an int exponent
        amount = amount.quantize(Decimal("0.000001")).normalize()
    return format(abs(amount) if amount == 0 else amount, "f")


@given(_AMOUNTS, st.integers(min_value=0, max_value=6))
def test_numeric_strings_keep_their_decimal_meaning(amount: Decimal, places: int) -> None:
    """Any amount written with 0-6 places comes back as its Decimal rendering."""
    text = f"{amount:.{places}f}"
    assert _reference(text) == money(text, "price")


@pytest.mark.parametrize(
    ("given_", "expected"),
    [("1999.00", "1999.00"), ("0", "0"), ("0.00", "0.00"), ("007.50", "7.50"), ("+5", "5"),
     ("-0.00", "0.00"), (".5", "0.5"), ("5.", "5"), (" 12.5 ", "12.5"), ("1.0000004", "1")],
)  # fmt: skip
def test_strings_become_canonical_decimal_strings(given_: str, expected: str) -> None:
    """Leading zeros, signs, bare points and spaces are normalised; canonical text is kept."""
    assert expected == money(given_, "price")


@pytest.mark.parametrize("given_", ["1000000000000000", "1e3", "12,5", "0x10", "1.2.3"])
def test_out_of_range_or_malformed_strings_are_rejected(given_: str) -> None:
    """10^15 and more, exponents and non-numbers are a precise InvalidPayload."""
    with pytest.raises(InvalidPayload, match="price"):
        money(given_, "price")
