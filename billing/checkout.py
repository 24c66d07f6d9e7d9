"""Quoting and starting a top-up: the all-in price, then a Stripe Checkout Session in EUR.

Nothing is credited here. Credits land only when Stripe confirms the payment by webhook
(``billing.webhooks``).
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import stripe
from allauth.account.models import EmailAddress
from django.conf import settings
from django.utils import timezone
from stripe.params.checkout import SessionCreateParams, SessionCreateParamsLineItem

from accounts.models import BillingProfile, User
from billing.models import TopUp, TopUpStatus
from billing.vat import VatDecision, ViesChecker, compute_vat_cents, decide_vat

CENTS = Decimal("0.01")


class TopUpError(Exception):
    """A top-up that cannot be quoted or started; the message is shown to the user."""


@dataclass(frozen=True)
class Quote:
    credits_cents: int
    fee_cents: int
    vat: VatDecision
    vat_cents: int
    buyer: dict[str, str]

    @property
    def net_cents(self) -> int:
        return self.credits_cents + self.fee_cents

    @property
    def gross_cents(self) -> int:
        return self.net_cents + self.vat_cents

    @property
    def vat_rate(self) -> Decimal:
        return self.vat.rate


def get_stripe_client() -> stripe.StripeClient:
    if not settings.STRIPE_SECRET_KEY:
        raise TopUpError("Top-ups are not configured on this server.")
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": settings.STRIPE_API_BASE},
        max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
    )


def eur_to_cents(eur: Decimal) -> int:
    return int((eur / CENTS).to_integral_value(rounding=ROUND_HALF_UP))


def is_verified(account: User) -> bool:
    return EmailAddress.objects.filter(user=account, verified=True).exists()


def get_buyer(account: User) -> dict[str, str]:
    profile = BillingProfile.objects.filter(account=account).first()
    return {
        "email": account.email,
        "legal_name": (profile.legal_name if profile else "") or account.full_name,
        "address": profile.address if profile else "",
        "country": profile.country.upper() if profile else "",
        "vat_number": profile.vat_number if profile else "",
    }


def quote_topup(*, account: User, credits_eur: Decimal, vies: ViesChecker | None = None) -> Quote:
    """The all-in price of ``credits_eur`` of credits for this buyer, as it will be charged."""
    low, high = settings.LOWROUTER_TOPUP_MIN_EUR, settings.LOWROUTER_TOPUP_MAX_EUR
    # Bounds before rounding: rounding a huge amount ("1e999999") to cents raises.
    if not credits_eur.is_finite() or not low <= credits_eur <= high:
        raise TopUpError(f"Top-ups are between EUR {low} and EUR {high} of credits.")
    if credits_eur != credits_eur.quantize(CENTS):
        raise TopUpError("Choose an amount in euros with at most two decimals.")
    buyer = get_buyer(account)
    if not buyer["country"]:
        raise TopUpError("Set your billing country first: VAT depends on it.")
    credits_cents = eur_to_cents(credits_eur)
    fee_cents = eur_to_cents(settings.LOWROUTER_TOPUP_FEE_EUR)
    decision = decide_vat(
        country=buyer["country"],
        vat_number=buyer["vat_number"],
        on=timezone.now().date(),
        vies=vies,
    )
    vat_cents = compute_vat_cents(credits_cents + fee_cents, decision.rate)
    # Keep the number that counted (compact, EL for Greece) on the invoice, not the typed one.
    buyer["vat_number"] = decision.vat_number or buyer["vat_number"]
    return Quote(credits_cents, fee_cents, decision, vat_cents, buyer)


def _line(name: str, cents: int) -> SessionCreateParamsLineItem:
    # SEPA Direct Debit requires every line in EUR.
    return {
        "price_data": {"currency": "eur", "unit_amount": cents, "product_data": {"name": name}},
        "quantity": 1,
    }


def start_checkout(
    *,
    account: User,
    credits_eur: Decimal,
    success_url: str,
    cancel_url: str,
    vies: ViesChecker | None = None,
) -> tuple[TopUp, str]:
    """Create the pending top-up and its Checkout Session; return it and the URL to send the
    buyer to. The price is quoted again here, never taken from the form."""
    if not is_verified(account):
        raise TopUpError("Verify your email address before adding credits.")
    quote = quote_topup(account=account, credits_eur=credits_eur, vies=vies)
    client = get_stripe_client()
    topup = TopUp.objects.create(
        account=account,
        credits_cents=quote.credits_cents,
        fee_cents=quote.fee_cents,
        vat_rate=quote.vat_rate,
        vat_cents=quote.vat_cents,
        gross_cents=quote.gross_cents,
        vat_treatment=quote.vat.treatment,
        buyer=quote.buyer,
    )
    lines = [
        _line(f"LowRouter credits ({quote.credits_cents} credits)", quote.credits_cents),
        _line("Payment and platform fee", quote.fee_cents),
    ]
    # VAT is computed here (dated rate table, VIES) and charged as its own line; our invoice is
    # the tax document, so Stripe Tax is not used.
    if quote.vat_cents:
        lines.append(_line(f"VAT {quote.vat_rate}% ({quote.vat.country})", quote.vat_cents))
    params: SessionCreateParams = {
        "mode": "payment",
        "payment_method_types": ["card", "sepa_debit"],
        "line_items": lines,
        "customer_email": account.email,
        "client_reference_id": str(topup.pk),
        "metadata": {"topup_id": str(topup.pk), "account_id": str(account.pk)},
        "payment_intent_data": {"metadata": {"topup_id": str(topup.pk)}},
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    try:
        session = client.v1.checkout.sessions.create(
            params=params, options={"idempotency_key": f"topup-{topup.pk}"}
        )
    except stripe.StripeError as exc:
        TopUp.objects.filter(pk=topup.pk).update(status=TopUpStatus.FAILED)
        raise TopUpError("The payment provider is unavailable; try again shortly.") from exc
    TopUp.objects.filter(pk=topup.pk).update(stripe_session_id=session.id)
    topup.stripe_session_id = session.id
    return topup, str(session.url)
