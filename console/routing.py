"""Auto-routing defaults (/dashboard/auto-routing): the account's layer of the router's
decision order, with a preview that runs the router for ``lowrouter/auto`` on them.

The router reads these defaults from every process's in-memory copy, reloaded when they change
(``routing.policies``), so a saved change applies from the next request on."""

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.http import AuthenticatedHttpRequest
from catalog.snapshot import get_snapshot
from keys.auth import KeyContext
from keys.models import ApiKey
from routing import health as health_state
from routing.errors import ApiError
from routing.models import AccountRoutingPolicy
from routing.policies import AccountPolicy, update_routing_defaults
from routing.router import plan_route, snapshot_slots
from routing.validation import parse_chat_request

PREVIEW_BODY = b'{"model": "lowrouter/auto", "messages": [{"role": "user", "content": "Hello"}]}'


class RoutingDefaultsForm(forms.Form):
    preferred_region = forms.ChoiceField(required=False, label="Prefer region")
    prefer_low_carbon = forms.BooleanField(required=False, label="Prefer low carbon")
    prefer_cheapest = forms.BooleanField(required=False, label="Prefer the cheapest")
    fixed_provider = forms.ChoiceField(
        required=False, label="Only this provider", help_text="A hard limit: nothing else."
    )
    provider_allowlist = forms.MultipleChoiceField(
        required=False, label="Allowed providers", help_text="Empty: every provider."
    )
    provider_denylist = forms.MultipleChoiceField(required=False, label="Never these providers")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        snapshot = get_snapshot()
        regions = sorted({r for m in snapshot.models.values() for r in m.regions})
        providers = sorted(snapshot.providers)
        preferred_region, fixed_provider = (
            self.fields["preferred_region"],
            self.fields["fixed_provider"],
        )
        assert isinstance(preferred_region, forms.ChoiceField)
        assert isinstance(fixed_provider, forms.ChoiceField)
        preferred_region.choices = [("", "No preference")] + [(r, r) for r in regions]
        fixed_provider.choices = [("", "Any provider")] + [(p, p) for p in providers]
        for name in ("provider_allowlist", "provider_denylist"):
            provider_list = self.fields[name]
            assert isinstance(provider_list, forms.MultipleChoiceField)
            provider_list.choices = [(p, p) for p in providers]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        allow, deny = (
            set(data.get("provider_allowlist") or ()),
            set(data.get("provider_denylist") or ()),
        )
        if allow & deny:
            raise forms.ValidationError(
                f"{', '.join(sorted(allow & deny))} is both allowed and denied."
            )
        fixed = data.get("fixed_provider")
        if fixed and (fixed in deny or (allow and fixed not in allow)):
            self.add_error("fixed_provider", "The fixed provider is excluded by the lists below.")
        return data


def _initial(account_id: int) -> dict[str, Any]:
    row = AccountRoutingPolicy.objects.filter(account_id=account_id).first()
    if row is None:
        return {}
    return {
        "preferred_region": row.preferred_region,
        "prefer_low_carbon": row.prefer_low_carbon,
        "prefer_cheapest": row.prefer_cheapest,
        "fixed_provider": row.fixed_provider,
        "provider_allowlist": row.provider_allowlist,
        "provider_denylist": row.provider_denylist,
    }


def preview(account_id: int, values: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The router's decision for ``lowrouter/auto`` with these defaults, for an unrestricted
    key of this account: (its trace, or None with the refusal it gave)."""
    snapshot = get_snapshot()
    policy = AccountPolicy(
        account_id=account_id,
        preferred_region=values.get("preferred_region") or "",
        prefer_low_carbon=bool(values.get("prefer_low_carbon")),
        fixed_provider=values.get("fixed_provider") or "",
        provider_allowlist=tuple(values.get("provider_allowlist") or ()),
        provider_denylist=tuple(values.get("provider_denylist") or ()),
        prefer_cheapest=bool(values.get("prefer_cheapest")),
    )
    key = KeyContext(
        key_id=0,
        key_name="preview",
        account_id=account_id,
        models=(),
        region="",
        daily_credit_limit=None,
        monthly_credit_limit=None,
        expires_at=None,
        prefer_low_carbon=False,
    )
    health = health_state.read_health(snapshot_slots(snapshot))
    try:
        plan = plan_route(
            snapshot, parse_chat_request(PREVIEW_BODY), key, policy=policy, health=health
        )
    except ApiError as refused:
        return None, refused.message
    return plan.trace.to_dict(), ""


@login_required
@require_http_methods(["GET", "POST"])
def auto_routing(request: AuthenticatedHttpRequest) -> HttpResponse:
    account_id = request.user.pk
    form = RoutingDefaultsForm(request.POST or None, initial=_initial(account_id))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        update_routing_defaults(
            account_id=account_id,
            actor=request.user,
            preferred_region=data["preferred_region"],
            prefer_low_carbon=data["prefer_low_carbon"],
            prefer_cheapest=data["prefer_cheapest"],
            fixed_provider=data["fixed_provider"],
            provider_allowlist=data["provider_allowlist"],
            provider_denylist=data["provider_denylist"],
        )
        messages.success(request, "Routing defaults saved: they apply from the next request.")
        return redirect("console:auto-routing")
    values = form.cleaned_data if form.is_bound and form.is_valid() else _initial(account_id)
    trace, refusal = preview(account_id, values)
    keys = ApiKey.objects.filter(account_id=account_id, revoked_at__isnull=True)
    overrides = [k for k in keys if k.region or k.models or k.prefer_low_carbon]
    context = {"form": form, "trace": trace, "refusal": refusal, "overrides": overrides}
    return render(request, "console/auto_routing.html", context, status=400 if form.errors else 200)
