"""System checks for money settings, run by ``manage.py check`` (``--deploy`` for production)."""

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
