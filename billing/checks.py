"""System checks for money settings, run by ``manage.py check`` (``--deploy`` for production):
Stripe needs its webhook secret, and an invoice is a legal document, so production refuses to
issue them without the seller's legal details."""

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register


@register(Tags.security, deploy=True)
def check_stripe_webhook_secret(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Stripe configured without the webhook's signing secret: every payment stays pending,
    since the webhook refuses all events rather than trust unsigned ones."""
    if settings.STRIPE_SECRET_KEY and not settings.STRIPE_WEBHOOK_SECRET:
        return [
            Error(
                "STRIPE_SECRET_KEY is set but STRIPE_WEBHOOK_SECRET is not: the Stripe webhook "
                "answers 503 to every event, so no top-up is ever credited.",
                hint="Set STRIPE_WEBHOOK_SECRET to the endpoint's signing secret (whsec_...).",
                id="billing.E001",
            )
        ]
    return []


# Mandatory on an EU invoice (legal name, address, VAT number) or promised by the pages and the
# invoice as the way to reach the operator (support email).
REQUIRED_SELLER_FIELDS = {
    "legal_name": "LOWROUTER_SELLER_NAME",
    "address": "LOWROUTER_SELLER_ADDRESS",
    "vat_number": "LOWROUTER_SELLER_VAT_NUMBER",
    "support_email": "LOWROUTER_SUPPORT_EMAIL",
}


@register(deploy=True)
def check_seller_details(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    seller = settings.LOWROUTER_SELLER
    return [
        Error(
            f"The seller's {field.replace('_', ' ')} is empty: invoices would be issued "
            "without a legally required detail.",
            hint=f"Set {variable}.",
            id="billing.E002",
        )
        for field, variable in REQUIRED_SELLER_FIELDS.items()
        if not str(seller.get(field) or "").strip()
    ]
