"""Operator screens for money: top-ups and refunds, adjustments, invoices, campaigns.

Every money action goes through a function that writes its audit entry (with the operator
as actor); nothing here edits a balance, an invoice or a ledger row directly. Every custom
view and action checks its own permission (``require_permission``): being staff is not enough.
"""

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse

from accounts.http import signed_in_user
from accounts.models import BillingProfile
from billing.campaigns import create_codes, export_codes, export_codes_csv
from billing.invoices import reissue_invoice
from billing.models import (
    ActivationCode,
    Campaign,
    Invoice,
    LedgerEntry,
    LedgerKind,
    Refund,
    StripeEvent,
    TopUp,
    VatRate,
    Wallet,
)
from billing.money import credits_to_micros
from billing.refunds import (
    RefundError,
    RefundPending,
    adjust_balance,
    get_refundable_cents,
    refund_topup,
)
from lowrouter.admin_permissions import require_permission

# The most credits one admin form moves at once: far above any real top-up, far below what
# the integer columns hold, so a mistyped number is a form error rather than a crash.
MAX_ADMIN_CREDITS = 10_000_000


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RefundForm(forms.Form):
    credits = forms.IntegerField(
        min_value=1,
        max_value=MAX_ADMIN_CREDITS,
        help_text="Credits to refund (1 credit = 1 cent).",
    )
    reason = forms.CharField(max_length=500)


@admin.register(TopUp)
class TopUpAdmin(ReadOnlyAdmin):
    list_display = ["id", "account", "status", "credits_cents", "gross_cents", "created_at"]
    list_filter = ["status", "vat_treatment"]
    search_fields = ["account__email", "stripe_session_id", "stripe_payment_intent_id"]

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(self.refund_view)
        return [path("<int:pk>/refund/", view, name="billing_topup_refund"), *super().get_urls()]

    @require_permission("billing.refund_topup")
    def refund_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        topup = get_object_or_404(TopUp, pk=pk)
        form = RefundForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                refund = refund_topup(
                    topup=topup,
                    credits_cents=form.cleaned_data["credits"],
                    actor=signed_in_user(request),
                    reason=form.cleaned_data["reason"],
                )
            except RefundPending as exc:
                messages.warning(request, str(exc))
                return redirect(reverse("admin:billing_topup_change", args=[topup.pk]))
            except RefundError as exc:
                messages.error(request, str(exc))
            else:
                messages.success(request, f"Refunded EUR {Decimal(refund.gross_cents) / 100}.")
                return redirect(reverse("admin:billing_topup_change", args=[topup.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Refund top-up {topup.pk}",
            "topup": topup,
            "form": form,
            "refundable": get_refundable_cents(topup),
        }
        return render(request, "billing/admin_refund.html", context)


class AdjustForm(forms.Form):
    # DecimalField refuses NaN and infinities; the bounds keep the micros within the columns.
    credits = forms.DecimalField(
        max_digits=14,
        decimal_places=6,
        min_value=-MAX_ADMIN_CREDITS,
        max_value=MAX_ADMIN_CREDITS,
        help_text="Credits, negative to remove, e.g. 250 or -12.5",
    )
    kind = forms.ChoiceField(
        choices=[(LedgerKind.ADJUSTMENT, "Adjustment"), (LedgerKind.PROMO_GRANT, "Promo grant")]
    )
    reason = forms.CharField(max_length=500)

    def clean_credits(self) -> int:
        micros = credits_to_micros(self.cleaned_data["credits"])
        if micros == 0:
            raise forms.ValidationError("Enter a number of credits other than zero.")
        return micros


@admin.register(Wallet)
class WalletAdmin(ReadOnlyAdmin):
    list_display = ["account", "balance_micros", "reserved_micros"]
    search_fields = ["account__email"]

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(self.adjust_view)
        return [path("<int:pk>/adjust/", view, name="billing_wallet_adjust"), *super().get_urls()]

    @require_permission("billing.adjust_wallet")
    def adjust_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        wallet = get_object_or_404(Wallet, pk=pk)
        form = AdjustForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                adjust_balance(
                    account=wallet.account_id,
                    amount_micros=form.cleaned_data["credits"],
                    reason=form.cleaned_data["reason"],
                    actor=signed_in_user(request),
                    kind=LedgerKind(form.cleaned_data["kind"]),
                )
            except Exception as exc:  # shown to the operator, nothing was written
                messages.error(request, str(exc))
            else:
                messages.success(request, "Balance adjusted.")
                return redirect(reverse("admin:billing_wallet_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Adjust the balance of {wallet.account}",
            "form": form,
        }
        return render(request, "billing/admin_adjust.html", context)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "account", "kind", "amount_micros", "reference", "actor"]
    list_filter = ["kind"]
    search_fields = ["account__email", "reference"]


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "topup",
        "status",
        "credits_cents",
        "gross_cents",
        "stripe_refund_id",
        "actor",
    ]
    list_filter = ["status"]
    search_fields = ["topup__account__email", "stripe_refund_id"]


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = ["number", "account", "gross_cents", "vat_treatment", "issued_at", "replaces"]
    search_fields = ["number", "account__email"]
    actions = ["reissue_from_profile"]

    @admin.action(description="Re-issue with the buyer's current billing profile")
    @require_permission("billing.reissue_invoice")
    def reissue_from_profile(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        for invoice in queryset:
            profile = BillingProfile.objects.filter(account_id=invoice.account_id).first()
            if profile is None:
                messages.error(request, f"{invoice.number}: the buyer has no billing profile.")
                continue
            buyer = {
                "legal_name": profile.legal_name,
                "address": profile.address,
                "country": profile.country,
                "vat_number": profile.vat_number,
            }
            try:
                new = reissue_invoice(invoice=invoice, buyer=buyer, actor=signed_in_user(request))
            except ValueError as exc:
                messages.error(request, str(exc))
            else:
                messages.success(request, f"{invoice.number} replaced by {new.number}.")


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "type", "status", "received_at", "handled_at"]
    list_filter = ["status", "type"]
    search_fields = ["event_id"]


@admin.register(VatRate)
class VatRateAdmin(admin.ModelAdmin):
    list_display = ["country", "rate", "valid_from"]
    list_filter = ["country"]


class CodeBatchForm(forms.Form):
    count = forms.IntegerField(min_value=1, max_value=10_000)


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "credit_micros", "eligibility", "deadline", "redemptions_count"]
    readonly_fields = ["redemptions_count", "created_by", "created_at"]
    actions = ["export_selected_codes"]

    def save_model(self, request: HttpRequest, obj: Campaign, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = signed_in_user(request)
        super().save_model(request, obj, form, change)

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(self.codes_view)
        return [path("<int:pk>/codes/", view, name="billing_campaign_codes"), *super().get_urls()]

    @require_permission("billing.issue_codes")
    def codes_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        campaign = get_object_or_404(Campaign, pk=pk)
        form = CodeBatchForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            create_codes(
                campaign=campaign, count=form.cleaned_data["count"], actor=signed_in_user(request)
            )
            return self._csv(campaign, export_codes_csv(campaign))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Generate codes for {campaign}",
            "form": form,
        }
        return render(request, "billing/admin_codes.html", context)

    @admin.action(description="Export codes as CSV")
    @require_permission("billing.issue_codes")
    def export_selected_codes(
        self, request: HttpRequest, queryset: QuerySet[Campaign]
    ) -> HttpResponse | None:
        if queryset.count() != 1:
            messages.error(request, "Select exactly one campaign to export.")
            return None
        campaign = queryset.get()
        return self._csv(campaign, export_codes(campaign=campaign, actor=signed_in_user(request)))

    def _csv(self, campaign: Campaign, text: str) -> HttpResponse:
        response = HttpResponse(text, content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}.csv"'
        return response


@admin.register(ActivationCode)
class ActivationCodeAdmin(ReadOnlyAdmin):
    list_display = ["code", "campaign", "redeemed_at"]
    list_filter = ["campaign"]
    search_fields = ["code"]
