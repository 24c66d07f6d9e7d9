"""Conversions between the ledger's integer micro-credits and EUR / credits at the edges.

1 credit = EUR 0.01; 1 micro-credit = 1e-6 credit = EUR 1e-8.
"""

from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation

MICROS_PER_CREDIT = 1_000_000
CREDITS_PER_EUR = 100
_MICROS_PER_EUR = MICROS_PER_CREDIT * CREDITS_PER_EUR
_TOKENS_PER_PRICE_UNIT = 1_000_000  # prices are quoted per 1M tokens
# No amount anyone types has a digit further than this from the decimal point either way.
_MAX_TYPED_EXPONENT = 12


def credits_to_micros(credits: Decimal | int | str) -> int:
    return int((Decimal(credits) * MICROS_PER_CREDIT).to_integral_value(rounding=ROUND_HALF_UP))


def micros_to_credits(micros: int) -> Decimal:
    return (Decimal(micros) / MICROS_PER_CREDIT).quantize(Decimal("0.000001"))


def format_eur(cents: int) -> str:
    """Euro cents as shown on pages, invoices and emails: ``EUR 12.50``."""
    return f"EUR {Decimal(cents) / 100:.2f}"


def exact_credits(micros: int) -> str:
    """Credits to the micro-credit, as the API reports balances (``GET /credits``,
    ``X-Credit-Balance``): a request can cost less than the 0.01 that ``format_credits`` shows."""
    return str(micros_to_credits(micros))


def format_credits(micros: int) -> str:
    """Credits with two decimals, as shown in headers and messages."""
    return str((Decimal(micros) / MICROS_PER_CREDIT).quantize(Decimal("0.01")))


def token_cost_micros(tokens: int, eur_per_1m: Decimal, *, round_up: bool = False) -> int:
    """The cost of ``tokens`` at a price in EUR per 1M tokens, in micro-credits.

    Rounded half-up for charges; rounded up for worst-case holds, so a hold is never short.
    """
    exact = Decimal(tokens) * eur_per_1m * _MICROS_PER_EUR / _TOKENS_PER_PRICE_UNIT
    return int(exact.to_integral_value(rounding=ROUND_CEILING if round_up else ROUND_HALF_UP))


def parse_eur(text: str) -> Decimal:
    """An amount of euros as a person types it ("20", "12.50", "12,50"), or ValueError.

    NaN, Infinity and exponents far from the decimal point are refused here: "1e999999" is a
    valid Decimal, but rounding it to cents raises, and no one means it."""
    try:
        value = Decimal(text.strip().replace(",", "."))
    except InvalidOperation as exc:
        raise ValueError("not a number") from exc
    if not value.is_finite() or abs(value.adjusted()) > _MAX_TYPED_EXPONENT:
        raise ValueError("not an amount")
    return value
