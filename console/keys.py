"""The keys pages: list, create (the token shown once), edit, disable, revoke, rotate.

Every change goes through ``keys.actions`` (the same functions the admin, the commands and the
management API call), which writes the audit entry in the same transaction. Creating or
rotating a key needs a verified email address. Pages are the signed-in account's keys only:
anyone else's key id is a 404.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypedDict

from django import forms
from django.contrib.auth.decorators import login_required
from django.db.models import Max
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from accounts.http import AuthenticatedHttpRequest
from billing.checkout import is_verified
from billing.models import DailyUsage, KeySpend, SpendPeriod
from billing.money import micros_to_credits
from billing.spending import period_starts
from catalog.snapshot import get_snapshot
from keys.actions import KeyPolicyError, create_key, revoke_key, update_key
from keys.models import ApiKey

MAX_LIMIT = Decimal("1000000000")


class KeyPolicy(TypedDict):
    """A key's policy, as the form edits it and ``keys.actions.create_key`` takes it."""

    name: str
    models: list[str]
    region: str
    daily_credit_limit: Decimal | None
    monthly_credit_limit: Decimal | None
    expires_at: datetime | None
    prefer_low_carbon: bool
    enabled: bool


class KeyPolicyForm(forms.Form):
    name = forms.CharField(max_length=100)
    models = forms.MultipleChoiceField(
        required=False,
        help_text="Leave empty to allow every model; otherwise only these.",
        widget=forms.SelectMultiple(attrs={"size": 8}),
    )
    region = forms.ChoiceField(required=False, help_text="Requests never leave this region.")
    daily_credit_limit = forms.DecimalField(
        required=False, min_value=0, max_value=MAX_LIMIT, decimal_places=2, max_digits=12
    )
    monthly_credit_limit = forms.DecimalField(
        required=False, min_value=0, max_value=MAX_LIMIT, decimal_places=2, max_digits=12
    )
    expires_at = forms.DateTimeField(
        required=False,
        help_text="UTC, e.g. 2027-01-31 18:00. Empty: never expires.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    prefer_low_carbon = forms.BooleanField(required=False)
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        snapshot = get_snapshot()
        models, region = self.fields["models"], self.fields["region"]
        assert isinstance(models, forms.MultipleChoiceField)
        assert isinstance(region, forms.ChoiceField)
        models.choices = [(m, m) for m in sorted(snapshot.models)]
        regions = sorted({r for m in snapshot.models.values() for r in m.regions})
        region.choices = [("", "Any region")] + [(r, r) for r in regions]

    def clean_expires_at(self) -> datetime | None:
        value = self.cleaned_data["expires_at"]
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if timezone.is_naive(value) else value.astimezone(UTC)
        if value <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return value

    def policy(self) -> KeyPolicy:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "models": data["models"],
            "region": data["region"],
            "daily_credit_limit": data["daily_credit_limit"],
            "monthly_credit_limit": data["monthly_credit_limit"],
            "expires_at": data["expires_at"],
            "prefer_low_carbon": data["prefer_low_carbon"],
            "enabled": data["enabled"],
        }


def policy_of(key: ApiKey) -> KeyPolicy:
    return {
        "name": key.name,
        "models": list(key.models),
        "region": key.region,
        "daily_credit_limit": key.daily_credit_limit,
        "monthly_credit_limit": key.monthly_credit_limit,
        "expires_at": key.expires_at.replace(tzinfo=None) if key.expires_at else None,
        "prefer_low_carbon": key.prefer_low_carbon,
        "enabled": key.enabled,
    }


@dataclass(frozen=True)
class KeyRow:
    key: ApiKey
    spent_today: Decimal
    spent_month: Decimal
    last_used: date | None

    @property
    def status(self) -> str:
        if self.key.revoked_at:
            return "revoked"
        if self.key.expires_at and self.key.expires_at <= timezone.now():
            return "expired"
        return "enabled" if self.key.enabled else "disabled"


def key_rows(account_id: int) -> list[KeyRow]:
    keys = list(ApiKey.objects.filter(account_id=account_id).order_by("revoked_at", "-created_at"))
    day, month = period_starts(timezone.now())
    spend = {
        (s.key_id, s.period): s.spent_micros
        for s in KeySpend.objects.filter(key__account_id=account_id, period_start__in=[day, month])
        if (s.period == SpendPeriod.DAY and s.period_start == day)
        or (s.period == SpendPeriod.MONTH and s.period_start == month)
    }
    last_used = dict(
        DailyUsage.objects.filter(account_id=account_id)
        .values("key_id")
        .annotate(last=Max("day"))
        .values_list("key_id", "last")
    )
    return [
        KeyRow(
            k,
            micros_to_credits(spend.get((k.pk, SpendPeriod.DAY), 0)),
            micros_to_credits(spend.get((k.pk, SpendPeriod.MONTH), 0)),
            last_used.get(k.pk),
        )
        for k in keys
    ]


def _own_key(request: AuthenticatedHttpRequest, key_id: int) -> ApiKey:
    key = ApiKey.objects.filter(pk=key_id, account=request.user).first()
    if key is None:
        raise Http404("No such key on this account.")
    return key


def _token_page(request: AuthenticatedHttpRequest, context: dict[str, object]) -> HttpResponse:
    """The one response that shows a token: never cached, never shown again."""
    response = render(request, "console/key_token.html", context)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def key_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    verified = is_verified(request.user)
    form = KeyPolicyForm(request.POST or None, initial={"enabled": True})
    if request.method == "POST":
        if not verified:
            return render(
                request,
                "console/keys.html",
                {"rows": key_rows(request.user.pk), "form": form, "verified": False},
                status=403,
            )
        if form.is_valid():
            try:
                key, token = create_key(account=request.user, actor=request.user, **form.policy())
            except KeyPolicyError as exc:
                form.add_error(None, str(exc))
            else:
                return _token_page(request, {"key": key, "token": token})
    context = {"rows": key_rows(request.user.pk), "form": form, "verified": verified}
    return render(request, "console/keys.html", context, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def key_edit(request: AuthenticatedHttpRequest, key_id: int) -> HttpResponse:
    key = _own_key(request, key_id)
    if key.revoked_at:
        return render(request, "console/key_edit.html", {"key": key, "form": None})
    form = KeyPolicyForm(request.POST or None, initial=policy_of(key))
    if request.method == "POST" and form.is_valid():
        changed = {
            name: value
            for name, value in form.policy().items()
            if value != getattr(key, name) and not (name == "models" and value == key.models)
        }
        try:
            if changed:
                update_key(key, actor=request.user, **changed)
        except KeyPolicyError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("console:keys")
    status = 400 if form.errors else 200
    return render(request, "console/key_edit.html", {"key": key, "form": form}, status=status)


@login_required
@require_POST
def key_toggle(request: AuthenticatedHttpRequest, key_id: int) -> HttpResponse:
    key = _own_key(request, key_id)
    if not key.revoked_at:
        update_key(key, actor=request.user, enabled=not key.enabled)
    return redirect("console:keys")


@login_required
@require_http_methods(["GET", "POST"])
def key_revoke(request: AuthenticatedHttpRequest, key_id: int) -> HttpResponse:
    key = _own_key(request, key_id)
    if request.method == "POST":
        revoke_key(key, actor=request.user)
        return redirect("console:keys")
    return render(request, "console/key_revoke.html", {"key": key})


@login_required
@require_POST
def key_rotate(request: AuthenticatedHttpRequest, key_id: int) -> HttpResponse:
    """A new key with the same scope; the old one keeps working until it is revoked, so the
    token can be swapped in every client first."""
    old = _own_key(request, key_id)
    if old.revoked_at or not is_verified(request.user):
        return redirect("console:keys")
    policy = policy_of(old)
    policy["name"] = f"{old.name} (rotated)"[:100]
    policy["expires_at"] = (
        old.expires_at if old.expires_at and old.expires_at > timezone.now() else None
    )
    key, token = create_key(account=request.user, actor=request.user, **policy)
    return _token_page(request, {"key": key, "token": token, "replaces": old})
