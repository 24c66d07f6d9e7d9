"""Deployment checks of the money side: an invoice is a legal document, so production refuses
to start issuing them without the seller's legal details."""

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

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
            id="billing.E001",
        )
        for field, variable in REQUIRED_SELLER_FIELDS.items()
        if not str(seller.get(field) or "").strip()
    ]
