"""Pages for adding credits, invoices and activation codes, and the Stripe webhook."""

import logging
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.http import AuthenticatedHttpRequest
from billing.campaigns import RedeemError, redeem_code
from billing.checkout import TopUpError, get_buyer, is_verified, quote_topup, start_checkout
from billing.invoice_documents import render_invoice_pdf
from billing.models import Invoice, StripeEventStatus
from billing.money import format_credits, format_eur, parse_eur
from billing.webhooks import BadSignature, WebhookNotConfigured, process_event, verify_event

logger = logging.getLogger(__name__)


def _parse_amount(raw: str) -> Decimal:
    try:
        return parse_eur(raw)
    except ValueError as exc:
        raise TopUpError("Enter an amount in euros, e.g. 20 or 12.50.") from exc


def _limits() -> dict[str, object]:
    return {
        "min_eur": settings.LOWROUTER_TOPUP_MIN_EUR,
        "max_eur": settings.LOWROUTER_TOPUP_MAX_EUR,
        "fee_eur": settings.LOWROUTER_TOPUP_FEE_EUR,
    }


@login_required
def topup(request: AuthenticatedHttpRequest) -> HttpResponse:
    """GET: the amount form. POST: the all-in quote to confirm before paying."""
    context: dict[str, object] = {
        **_limits(),
        "verified": is_verified(request.user),
        "needs_details": not get_buyer(request.user)["country"],
    }
    if request.method == "POST":
        amount = request.POST.get("amount", "")
        context["amount"] = amount
        try:
            quote = quote_topup(account=request.user, credits_eur=_parse_amount(amount))
        except TopUpError as exc:
            context["error"] = str(exc)
            return render(request, "billing/topup.html", context, status=400)
        rows = [
            (f"Credits ({quote.credits_cents})", format_eur(quote.credits_cents)),
            ("Payment and platform fee", format_eur(quote.fee_cents)),
            ("Net", format_eur(quote.net_cents)),
            (f"VAT {quote.vat_rate}% ({quote.vat.treatment.label})", format_eur(quote.vat_cents)),
        ]
        context.update(
            quote=quote,
            amount=_parse_amount(amount),
            rows=rows,
            gross=format_eur(quote.gross_cents),
        )
        return render(request, "billing/topup_confirm.html", context)
    return render(request, "billing/topup.html", context)


@login_required
@require_POST
def topup_confirm(request: AuthenticatedHttpRequest) -> HttpResponse:
    success = request.build_absolute_uri(reverse("billing:topup_done"))
    cancel = request.build_absolute_uri(reverse("billing:topup"))
    try:
        _, url = start_checkout(
            account=request.user,
            credits_eur=_parse_amount(request.POST.get("amount", "")),
            success_url=success + "?session_id={CHECKOUT_SESSION_ID}",
            cancel_url=cancel,
        )
    except TopUpError as exc:
        context = {**_limits(), "error": str(exc), "verified": is_verified(request.user)}
        return render(request, "billing/topup.html", context, status=400)
    return redirect(url)


@login_required
def topup_done(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render(request, "billing/topup_done.html")


@login_required
def invoice_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    invoices = Invoice.objects.for_account(request.user.pk).select_related("replaces")
    return render(request, "billing/invoices.html", {"invoices": invoices})


@login_required
def invoice_pdf(request: AuthenticatedHttpRequest, number: str) -> HttpResponse:
    # Someone else's invoice is a 404, not a 403: its existence is not disclosed. No number
    # holds a NUL, and PostgreSQL refuses one in a query parameter outright.
    invoice = None
    if "\x00" not in number:
        invoice = Invoice.objects.for_account(request.user.pk).filter(number=number).first()
    if invoice is None:
        raise Http404("No such invoice.")
    response = HttpResponse(render_invoice_pdf(invoice), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{invoice.number}.pdf"'
    return response


@login_required
def redeem(request: AuthenticatedHttpRequest) -> HttpResponse:
    context: dict[str, object] = {}
    if request.method == "POST":
        try:
            entry = redeem_code(user=request.user, code=request.POST.get("code", ""))
        except RedeemError as exc:
            context.update(error=str(exc), code=request.POST.get("code", ""))
            return render(request, "billing/redeem.html", context, status=400)
        context["granted"] = format_credits(entry.amount_micros)
    return render(request, "billing/redeem.html", context)


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    try:
        event = verify_event(
            payload=request.body, signature=request.headers.get("Stripe-Signature", "")
        )
    except WebhookNotConfigured:
        # 503, so Stripe keeps retrying the delivery until an operator sets the secret.
        logger.error("Stripe webhook refused: STRIPE_WEBHOOK_SECRET is not set on this server.")
        return HttpResponse("Webhook not configured.", status=503)
    except BadSignature:
        return HttpResponseBadRequest("Invalid signature.")
    stored = process_event(event)
    if stored.status == StripeEventStatus.FAILED:
        return HttpResponse("Handler failed; retry.", status=500)
    return HttpResponse("ok")
