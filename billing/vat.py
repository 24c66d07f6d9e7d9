"""Which VAT applies to a top-up, for a seller established in France selling electronically
supplied services (credits for an API).

- EU business with a validated VAT number of another member state: reverse charge, no VAT.
- French business, or any EU consumer: VAT at the rate of the buyer's country (FR for France).
- Outside the EU: no VAT.

Rates come from the dated ``VatRate`` table. A VAT number counts only once VIES confirms it;
when VIES cannot answer, VAT is charged as for a consumer (the safe side: the buyer can ask
for a re-issued invoice once the number is confirmed).
"""

import logging
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

import httpx
from django.conf import settings
from django.utils.module_loading import import_string
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError

from billing.models import VatRate, VatTreatment

logger = logging.getLogger(__name__)

SELLER_COUNTRY = "FR"
EU_COUNTRIES = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
    ]
)


class InvalidVatNumber(ValueError):
    pass


class ViesUnavailable(Exception):
    """VIES did not give an answer (member state down, rate limited, network)."""


class ViesChecker(Protocol):
    def check(self, *, country: str, number: str) -> bool:
        """True when VIES knows the number as valid; raise ViesUnavailable when it cannot say."""
        ...


class ViesRestChecker:
    """The European Commission's VIES REST API: GET {LOWROUTER_VIES_URL}/ms/{CC}/vat/{number}
    answers ``isValid`` and a ``userError`` (VALID, INVALID, or why it cannot say)."""

    def __init__(self, base_url: str | None = None) -> None:
        self.base_url = (base_url or settings.LOWROUTER_VIES_URL).rstrip("/")

    def check(self, *, country: str, number: str) -> bool:
        try:
            response = httpx.get(f"{self.base_url}/ms/{country}/vat/{number}", timeout=10.0)
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ViesUnavailable(str(exc)) from exc
        if body.get("userError") not in (None, "VALID", "INVALID"):
            raise ViesUnavailable(str(body.get("userError")))
        return bool(body.get("isValid"))


def get_vies_checker() -> ViesChecker:
    return import_string(settings.LOWROUTER_VIES_CHECKER)()


@dataclass(frozen=True)
class VatDecision:
    treatment: VatTreatment
    rate: Decimal  # percent
    country: str
    vat_number: str = ""  # compact form with the VIES prefix (EL for Greece), when one counts

    @property
    def mention(self) -> str:
        if self.treatment == VatTreatment.REVERSE_CHARGE:
            return "Reverse charge: VAT due by the customer (Art. 196 Directive 2006/112/EC)."
        if self.treatment == VatTreatment.OUTSIDE_EU:
            return "VAT not applicable, supplied outside the EU (Art. 59 Directive 2006/112/EC)."
        return ""


def normalise_vat_number(value: str) -> str:
    """The compact form with its country prefix (``EL`` for Greece, as VIES wants), or raise."""
    try:
        compact = eu_vat.validate(value)
    except ValidationError as exc:
        raise InvalidVatNumber(f"{value!r} is not a valid EU VAT number.") from exc
    if compact.startswith("GR"):
        compact = "EL" + compact[2:]
    return compact


def vat_country(vat_number: str) -> str:
    """ISO country of a compact VAT number (EL -> GR); XI (Northern Ireland) is outside."""
    prefix = vat_number[:2]
    return "GR" if prefix == "EL" else prefix


def get_standard_rate(*, country: str, on: date) -> Decimal:
    row = (
        VatRate.objects.filter(country=country, valid_from__lte=on).order_by("-valid_from").first()
    )
    if row is None:
        raise LookupError(f"No VAT rate for {country} on {on}.")
    return row.rate


def decide_vat(
    *, country: str, vat_number: str, on: date, vies: ViesChecker | None = None
) -> VatDecision:
    country = country.upper()
    if country not in EU_COUNTRIES:
        return VatDecision(VatTreatment.OUTSIDE_EU, Decimal("0"), country)
    number = normalise_vat_number(vat_number) if vat_number else ""
    if number and vat_country(number) == country and country != SELLER_COUNTRY:
        checker = vies or get_vies_checker()
        try:
            confirmed = checker.check(country=number[:2], number=number[2:])
        except ViesUnavailable:
            logger.warning("VIES unavailable for %s; charging VAT provisionally", number[:2])
            confirmed = False
        if confirmed:
            return VatDecision(VatTreatment.REVERSE_CHARGE, Decimal("0"), country, number)
    treatment = VatTreatment.DOMESTIC if country == SELLER_COUNTRY else VatTreatment.EU_CONSUMER
    return VatDecision(treatment, get_standard_rate(country=country, on=on), country, number)


def compute_vat_cents(net_cents: int, rate: Decimal) -> int:
    """VAT on a net amount, rounded half-up to the cent."""
    return int((Decimal(net_cents) * rate / 100).quantize(Decimal("1"), rounding=ROUND_HALF_UP))
