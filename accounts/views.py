"""Account pages of our own beside django-allauth's."""

from allauth.account.models import EmailAddress
from allauth.core import ratelimit
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods


@require_http_methods(["GET", "POST"])
def resend_verification(request: HttpRequest) -> HttpResponse:
    """A new verification link for an unverified address. The answer is the same whether or
    not the address has an account (no way to test which emails are customers), and it is
    rate limited per IP and per address."""
    context: dict[str, object] = {}
    if request.method == "POST":
        email = request.POST.get("email", "").strip().lower()[:254]
        context["email"] = email
        try:
            validate_email(email)
        except ValidationError:
            context["error"] = "Enter a valid email address."
            return render(request, "account/resend_verification.html", context, status=400)
        if not ratelimit.consume(request, action="resend_verification", key=email):
            context["error"] = "Too many requests for a new link: wait a few minutes."
            return render(request, "account/resend_verification.html", context, status=429)
        address = EmailAddress.objects.filter(email__iexact=email, verified=False).first()
        if address is not None:
            address.send_confirmation(request)
        context["sent"] = True
    return render(request, "account/resend_verification.html", context)
