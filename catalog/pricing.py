"""EUR prices for offerings.

Prices are published per 1M tokens in the provider's billing currency. EUR prices are used as
they are; other currencies need a current ECB rate (the FX ingest), and an offering whose price
cannot be converted is not routable: there is never a hard-coded fallback rate.
"""

from dataclasses import dataclass
from decimal import Decimal

from catalog.models import Currency, Offering


@dataclass(frozen=True)
class EurPrices:
    prompt: Decimal
    completion: Decimal
    cached_prompt: Decimal | None


def current_rates() -> dict[str, Decimal]:
    """Multipliers from a currency to EUR that may be used right now.

    Each is ``max(1/ECB quote, floor) * (1 + buffer/100)``; a currency whose rate is stale per
    the TARGET calendar, or every currency after a failed ingest, is left out (see catalog.fx).
    """
    # Imported here: catalog.fx imports the snapshot module, which imports this one.
    from catalog.fx import current_multipliers

    return current_multipliers()


def to_eur(amount: Decimal, currency: str, rates: dict[str, Decimal]) -> Decimal | None:
    if currency == Currency.EUR:
        return amount
    rate = rates.get(currency)
    if rate is None:
        return None
    return amount * rate


def eur_prices(offering: Offering, currency: str, rates: dict[str, Decimal]) -> EurPrices | None:
    prompt = to_eur(offering.prompt_price, currency, rates)
    completion = to_eur(offering.completion_price, currency, rates)
    if prompt is None or completion is None:
        return None
    cached = None
    if offering.cached_prompt_price is not None:
        cached = to_eur(offering.cached_prompt_price, currency, rates)
    return EurPrices(prompt=prompt, completion=completion, cached_prompt=cached)
