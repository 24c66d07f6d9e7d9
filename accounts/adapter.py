"""How django-allauth speaks for LowRouter: the product's name and the configured site URL in
every email and link, whatever host the request came through."""

from types import SimpleNamespace
from urllib.parse import quote, urlsplit

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.models import EmailConfirmation
from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

PRODUCT = "LowRouter"


def site() -> SimpleNamespace:
    """What the email templates call ``current_site``: never the Sites framework's
    example.com."""
    return SimpleNamespace(
        name=PRODUCT, domain=urlsplit(settings.SITE_URL).netloc, url=settings.SITE_URL
    )


class AccountAdapter(DefaultAccountAdapter):
    def format_email_subject(self, subject: str) -> str:
        return f"[{PRODUCT}] {subject}"

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        super().send_mail(template_prefix, email, {**context, "current_site": site()})

    def get_email_confirmation_url(
        self, request: HttpRequest, emailconfirmation: EmailConfirmation
    ) -> str:
        return settings.SITE_URL + reverse("account_confirm_email", args=[emailconfirmation.key])

    def get_reset_password_from_key_url(self, key: str) -> str:
        # allauth's key is opaque here ("<uidb36>-<token>"): put it where its URL expects it.
        path = reverse("account_reset_password_from_key", kwargs={"uidb36": "UID", "key": "KEY"})
        return settings.SITE_URL + path.replace("UID-KEY", quote(key))
