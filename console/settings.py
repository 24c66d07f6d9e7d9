"""The settings pages: billing details (VAT number checked against VIES), the eco baseline,
notifications, and the account's own audit log (with a CSV export)."""

import csv
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled
from allauth.socialaccount.models import SocialAccount
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods
from django_countries import countries

from accounts.actions import update_billing_details, update_preferences
from accounts.http import AuthenticatedHttpRequest
from accounts.models import AuditEntry, BillingProfile, Preferences
from billing.vat import (
    InvalidVatNumber,
    ViesUnavailable,
    get_vies_checker,
    normalise_vat_number,
    vat_country,
)
from catalog.snapshot import get_snapshot

MAX_THRESHOLD = Decimal("1000000")


class BillingDetailsForm(forms.Form):
    legal_name = forms.CharField(max_length=200, required=False, label="Legal name")
    address = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    country = forms.ChoiceField(choices=[("", "Choose your country"), *countries])
    vat_number = forms.CharField(
        max_length=32,
        required=False,
        label="EU VAT number",
        help_text="For businesses in the EU: checked with VIES; reverse charge applies once valid.",
    )

    def clean_vat_number(self) -> str:
        raw = self.cleaned_data["vat_number"].strip()
        if not raw:
            return ""
        try:
            return normalise_vat_number(raw)
        except InvalidVatNumber as exc:
            raise forms.ValidationError(
                "This is not a valid EU VAT number (e.g. DE136695976)."
            ) from exc

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        number, country = data.get("vat_number"), data.get("country")
        if number and country and vat_country(number) != country.upper():
            self.add_error("vat_number", "The VAT number is not from the country chosen above.")
        return data


class BaselineForm(forms.Form):
    eco_baseline_model = forms.ChoiceField(required=False, label="Baseline model")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        known = sorted(
            m.id for m in get_snapshot().models.values() if m.active_params_b is not None
        )
        field = self.fields["eco_baseline_model"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", "The operator's default")] + [(m, m) for m in known]


class NotificationsForm(forms.Form):
    low_balance_threshold = forms.DecimalField(
        required=False,
        min_value=0,
        max_value=MAX_THRESHOLD,
        decimal_places=2,
        max_digits=9,
        label="Email me when the balance falls below (credits)",
        help_text="Once each time it falls below; empty: no alert.",
    )
    monthly_summary = forms.BooleanField(required=False, label="Monthly usage summary")
    invoice_emails = forms.BooleanField(required=False, label="Invoices by email")
    price_notices = forms.BooleanField(required=False, label="Price and fee change notices")


def _vies_result(number: str) -> tuple[datetime | None, str]:
    """(validated_at or None, a sentence for the customer)."""
    if not number:
        return None, ""
    try:
        valid = get_vies_checker().check(country=number[:2], number=number[2:])
    except ViesUnavailable:
        return None, "VIES did not answer: the number is saved and checked again at top-up."
    if valid:
        return timezone.now(), "VIES confirms the VAT number: reverse charge applies from now on."
    return None, "VIES does not know this VAT number: VAT is charged until it does."


def _grid_rows() -> list[tuple[str, float]]:
    snapshot = get_snapshot()
    eco = snapshot.eco
    if eco is None or eco.current_version is None:
        return []
    table = eco.grids[eco.current_version]
    regions = sorted({r for m in snapshot.models.values() for r in m.regions})
    return [(r, table[r].g_per_kwh) for r in regions if r in table]


@login_required
@require_http_methods(["GET", "POST"])
def settings_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    user = request.user
    profile = BillingProfile.objects.filter(account=user).first()
    prefs = Preferences.of(user.pk)
    billing = BillingDetailsForm(
        initial={
            "legal_name": profile.legal_name if profile else "",
            "address": profile.address if profile else "",
            "country": profile.country.upper() if profile else "",
            "vat_number": profile.vat_number if profile else "",
        }
    )
    baseline = BaselineForm(initial={"eco_baseline_model": prefs.eco_baseline_model})
    notifications = NotificationsForm(
        initial={name: getattr(prefs, name) for name in NotificationsForm.base_fields}
    )
    section = request.POST.get("section")
    failed_section = False
    if section == "billing":
        billing = BillingDetailsForm(request.POST)
        if billing.is_valid():
            details = billing.cleaned_data
            validated_at, said = _vies_result(details["vat_number"])
            update_billing_details(
                account=user, actor=user, vat_number_validated_at=validated_at, **details
            )
            messages.success(request, " ".join(["Billing details saved.", said]).strip())
            return redirect("/dashboard/settings#billing")
    elif section == "baseline":
        baseline = BaselineForm(request.POST)
        if baseline.is_valid():
            update_preferences(account=user, actor=user, **baseline.cleaned_data)
            messages.success(request, "Eco baseline saved.")
            return redirect("/dashboard/settings#baseline")
    elif section == "notifications":
        notifications = NotificationsForm(request.POST)
        if notifications.is_valid():
            update_preferences(account=user, actor=user, **notifications.cleaned_data)
            messages.success(request, "Notification settings saved.")
            return redirect("/dashboard/settings#notifications")
    elif request.method == "POST":
        messages.error(request, "That form is not one of this page's: nothing was saved.")
        failed_section = True
    failed = failed_section or any(f.errors for f in (billing, baseline, notifications))
    context = {
        "billing": billing,
        "baseline": baseline,
        "notifications": notifications,
        "profile": profile,
        "grid_rows": _grid_rows(),
        "two_factor": is_mfa_enabled(user, [Authenticator.Type.TOTP]),
        "connected": SocialAccount.objects.filter(user=user).count(),
    }
    return render(request, "console/settings.html", context, status=400 if failed else 200)


def change_lines(changes: dict) -> list[tuple[str, str]]:
    """Each field with "old → new" for an edit, or its value for a creation."""
    lines = []
    for field, change in changes.items():
        if isinstance(change, list) and len(change) == 2:
            old, new = ("—" if v is None else v for v in change)
            lines.append((field, f"{old} → {new}"))
        else:
            lines.append((field, "—" if change is None else str(change)))
    return lines


def who(entry: AuditEntry) -> str:
    """The actor as the customer sees it: themselves, or LowRouter's staff (never a name)."""
    if entry.actor_id is None:
        return "system"
    return "you" if entry.actor_id == entry.account_id else "LowRouter staff"


def _audit_lines(entries: Iterator[AuditEntry]) -> Iterator[str]:
    class Line:
        def write(self, value: str) -> str:
            return value

    writer = csv.writer(Line())
    yield writer.writerow(["created_at", "actor", "action", "target", "changes"])
    for e in entries:
        yield writer.writerow(
            [e.created_at.isoformat().replace("+00:00", "Z"), who(e), e.action, e.target, e.changes]
        )


@login_required
def audit_page(request: AuthenticatedHttpRequest) -> HttpResponse | StreamingHttpResponse:
    entries = AuditEntry.objects.filter(account=request.user).select_related("actor")
    if request.GET.get("format") == "csv":
        response = StreamingHttpResponse(
            _audit_lines(entries.iterator(chunk_size=500)), content_type="text/csv"
        )
        response["Content-Disposition"] = 'attachment; filename="lowrouter-audit-log.csv"'
        return response
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    rows = [(e, who(e), change_lines(e.changes)) for e in page.object_list]
    return render(request, "console/audit.html", {"page": page, "rows": rows})
