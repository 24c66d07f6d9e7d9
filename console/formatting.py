"""How the console writes numbers: credits to the micro-credit (a request can cost 0.004),
tokens with thousands separators, eco values with the precision they deserve."""

from decimal import Decimal

from billing.money import MICROS_PER_CREDIT


def credits(micros: int) -> str:
    """Credits with up to six decimals, trailing zeros dropped but at least two kept."""
    text = f"{Decimal(micros) / MICROS_PER_CREDIT:.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return (
        f"{int(whole):,}.{frac.ljust(2, '0')}"
        if not whole.startswith("-")
        else (f"-{int(whole[1:]):,}.{frac.ljust(2, '0')}")
    )


def tokens(n: float) -> str:
    return f"{int(n):,}"


def eco(value: float | None, digits: int = 3) -> str:
    """Significant digits, never an exponent; "—" when the estimate was omitted."""
    if value is None:
        return "—"
    if value == 0:
        return "0"
    text = f"{value:.{digits}g}"
    if "e" in text:
        text = format(Decimal(text), "f")
    return text
