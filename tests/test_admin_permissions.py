"""Being staff is not enough: every custom admin view and action of ours needs its own permission.

The views and actions are discovered from the admin site, so one added later without a
permission check fails here rather than shipping open to every staff account. A check is
``lowrouter.admin_permissions.require_permission`` (403), or for an action Django's own
``permissions=[...]`` (the admin does not offer the action, so it cannot be run).
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_permission_codename
from django.db.models import Model
from django.test import Client, RequestFactory
from django.urls import URLPattern, reverse
from django.utils import timezone

from accounts.models import AuditEntry, User
from billing.ledger import get_wallet
from billing.models import Campaign, LedgerEntry, TopUp, TopUpStatus, VatTreatment, Wallet

pytestmark = pytest.mark.django_db

StaffClientMaker = Callable[..., tuple[User, Client]]  # the staff_client fixture (conftest)


@dataclass(frozen=True)
class Endpoint:
    model: type[Model]
    kind: str  # "view" (a URL from get_urls) or "action"
    name: str  # the URL name, or the action name
    permission: str | None
    url_args: tuple[str, ...] = ()
    django_checked: bool = False  # an action with Django's own permissions=[...]

    def __str__(self) -> str:
        return f"{self.model._meta.label}:{self.kind}:{self.name}"


def _is_ours(module: str) -> bool:
    """Defined in this repository, not in Django or a third-party package."""
    app = apps.get_containing_app_config(module)
    if app is None:
        return False
    path = Path(app.path).resolve()
    # A virtualenv inside the checkout (as `make` creates it) holds third-party code too.
    return path.is_relative_to(settings.BASE_DIR) and "site-packages" not in path.parts


def _custom_urls(model_admin: admin.ModelAdmin) -> list[URLPattern]:
    builtin = {pattern.name for pattern in admin.ModelAdmin.get_urls(model_admin)}
    return [
        pattern
        for pattern in model_admin.get_urls()
        if pattern.name not in builtin and _is_ours(pattern.callback.__module__)
    ]


def discover_endpoints() -> list[Endpoint]:
    found = []
    for model in apps.get_models():
        if not admin.site.is_registered(model):
            continue
        model_admin = admin.site.get_model_admin(model)
        for pattern in _custom_urls(model_admin):
            perm = getattr(pattern.callback, "required_permission", None)
            args = tuple(pattern.pattern.converters)
            found.append(Endpoint(model, "view", pattern.name, perm, args))
        for action in model_admin.actions or []:
            func, name, _ = model_admin.get_action(action)
            if not _is_ours(func.__module__):
                continue
            perm = getattr(func, "required_permission", None)
            django_perm = _django_action_permission(model, func)
            found.append(Endpoint(model, "action", name, perm or django_perm, (), not perm))
    return found


def _django_action_permission(model: type[Model], func: object) -> str | None:
    """The model permission behind Django's permissions=["change"] (and add/delete): the
    admin's default has_change_permission checks exactly that one."""
    allowed = getattr(func, "allowed_permissions", ())
    if len(allowed) != 1 or allowed[0] not in ("add", "change", "delete"):
        return None
    return f"{model._meta.app_label}.{get_permission_codename(allowed[0], model._meta)}"


def _offered_actions(client: Client, model: type[Model]) -> set[str]:
    request = RequestFactory().get("/")
    request.user = User.objects.get(pk=client.session["_auth_user_id"])
    return set(admin.site.get_model_admin(model).get_actions(request))


ENDPOINTS = discover_endpoints()


def _make_object(model: type[Model]) -> Model:
    """One object for each model with a custom view, for the view to open."""
    buyer = User.objects.create_user("buyer@example.com")
    if model is Wallet:
        return get_wallet(buyer)
    if model is TopUp:
        return TopUp.objects.create(
            account=buyer,
            status=TopUpStatus.PAID,
            credits_cents=1000,
            fee_cents=40,
            vat_rate=Decimal("20"),
            vat_cents=208,
            gross_cents=1248,
            vat_treatment=VatTreatment.DOMESTIC,
            paid_at=timezone.now(),
        )
    if model is Campaign:
        return Campaign.objects.create(
            name="Meetup",
            credit_micros=100_000_000,
            deadline=timezone.now() + timedelta(days=7),
            max_redemptions=50,
        )
    raise AssertionError(f"add a {model.__name__} to _make_object for its custom admin view")


def _url(endpoint: Endpoint, pk: object) -> str:
    if endpoint.kind == "view":
        return reverse(f"admin:{endpoint.name}", kwargs={arg: pk for arg in endpoint.url_args})
    meta = endpoint.model._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")


def _run_action(client: Client, endpoint: Endpoint, pk: object) -> int:
    data = {"action": endpoint.name, "_selected_action": [pk]}
    return client.post(_url(endpoint, pk), data).status_code


def test_discovery_finds_the_views_and_actions_that_move_money() -> None:
    found = {(e.model, e.kind, e.name) for e in ENDPOINTS}
    assert {
        (Wallet, "view", "billing_wallet_adjust"),
        (TopUp, "view", "billing_topup_refund"),
        (Campaign, "view", "billing_campaign_codes"),
        (Campaign, "action", "export_selected_codes"),
    } <= found


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_every_custom_admin_view_and_action_names_a_permission(endpoint: Endpoint) -> None:
    assert endpoint.permission, f"{endpoint} checks no permission (use require_permission)"
    assert not endpoint.permission.split(".")[1].startswith("view_")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_staff_without_the_permission_is_refused_and_nothing_is_written(
    endpoint: Endpoint, staff_client: StaffClientMaker
) -> None:
    _, client = staff_client(view_everything=True)
    if endpoint.kind == "view":
        pk = _make_object(endpoint.model).pk
        url = _url(endpoint, pk)
        assert client.get(url).status_code == 403
        post = {"credits": "100000", "kind": "adjustment", "reason": "me", "count": "5"}
        assert client.post(url, post).status_code == 403
    elif endpoint.django_checked:
        assert endpoint.name not in _offered_actions(client, endpoint.model)
        # The list comes back (200 when no action is left to offer, else 302); nothing ran.
        assert _run_action(client, endpoint, "1") in (200, 302)
    else:
        assert _run_action(client, endpoint, "1") == 403
    assert not LedgerEntry.objects.exists()
    assert not AuditEntry.objects.exists()
    assert not LogEntry.objects.exists()


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_staff_with_the_permission_gets_through(
    endpoint: Endpoint, staff_client: StaffClientMaker
) -> None:
    _, client = staff_client(endpoint.permission or "missing.permission", view_everything=True)
    if endpoint.kind == "view":
        pk = _make_object(endpoint.model).pk
        assert client.get(_url(endpoint, pk)).status_code == 200
    else:
        # Nothing selected exists, so the action runs on no rows and goes back to the list.
        assert _run_action(client, endpoint, "1") == 302
