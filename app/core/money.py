"""Money: ``Decimal`` with two places, rounded half-up; never float."""

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
MONEY_MAX_DIGITS = 16  # up to 99,999,999,999,999.99


def quantize_money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def format_money(value: Decimal) -> str:
    return f"{quantize_money(value):.2f}"
