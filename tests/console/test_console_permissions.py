"""Who may open which console and account page: a matrix over every page URL.

Anonymous visitors are sent to sign in; an unverified customer reads every page but cannot
create a key or start a top-up (and is offered a new verification link); another account's
object ids are a 404; staff see their own (empty) account in the console, nothing of the
customer's. A last test keeps the matrix complete: a new console or billing page must be added
here to pass.
"""

import io
import json
import zipfile
from dataclasses import dataclass

import pytest
from django.http import HttpResponseBase
from django.test import Client
from django.urls import URLPattern, get_resolver

from accounts.models import AuditEntry, BillingProfile, User
from billing.invoices import issue_invoice
from billing.models import TopUp
from billing.onboarding import create_account
from keys.models import ApiKey
from tests.conftest import StaffClientMaker
from tests.console.conftest import Customer, make_customer
from tests.factories import TopUpFactory

pytestmark = pytest.mark.django_db

# Every signed-in page read with GET: (URL name, path). {gen}, {key}, {invoice} are the ids of
# the customer's own objects.
PAGES = [
    ("console:dashboard", "/dashboard"),
    ("console:transaction", "/dashboard/transactions/{gen}"),
    ("console:export", "/dashboard/export.csv"),
    ("console:credits", "/dashboard/credits"),
    ("console:settings", "/dashboard/settings"),
    ("console:audit", "/dashboard/settings/audit"),
    ("console:data", "/dashboard/settings/data"),
    ("console:auto-routing", "/dashboard/auto-routing"),
    ("console:keys", "/dashboard/keys"),
    ("console:key-edit", "/dashboard/keys/{key}"),
    ("console:key-revoke", "/dashboard/keys/{key}/revoke"),
    ("billing:topup", "/billing/topup"),
    ("billing:topup_done", "/billing/topup/done"),
    ("billing:invoices", "/billing/invoices"),
    ("billing:invoice_pdf", "/billing/invoices/{invoice}.pdf"),
    ("billing:redeem", "/billing/redeem"),
    ("account_email", "/accounts/email/"),
    ("account_change_password", "/accounts/password/change/"),
]
# Every signed-in action taken with POST.
ACTIONS = [
    ("console:data-export", "/dashboard/settings/data/export"),
    ("console:data-delete-usage", "/dashboard/settings/data/delete-usage"),
    ("console:data-delete-account", "/dashboard/settings/data/delete-account"),
    ("console:key-toggle", "/dashboard/keys/{key}/toggle"),
    ("console:key-rotate", "/dashboard/keys/{key}/rotate"),
    ("billing:topup_confirm", "/billing/topup/confirm"),
]
# Pages that name one object of the account.
OBJECT_PAGES = [(n, p) for n, p in PAGES + ACTIONS if "{" in p]
# Reached without signing in on purpose: Stripe's webhook is signed, not signed in.
PUBLIC = {"billing:stripe_webhook"}


@dataclass
class World:
    customer: Customer
    generation_id: str
    invoice_number: str

    def path(self, template: str) -> str:
        return template.format(
            gen=self.generation_id, key=self.customer.key.pk, invoice=self.invoice_number
        )

    def secrets(self) -> list[str]:
        """What no one but the customer may see of them."""
        key = self.customer.key
        return [
            self.customer.user.email,
            key.name,
            key.display_token,
            self.generation_id,
            self.invoice_number,
            "Lovelace Analytical Engines",
        ]


@pytest.fixture
def world(customer: Customer) -> World:
    """The customer (ada@example.com) with a usage record, a paid top-up's invoice and a billing
    profile, so every page has something of theirs to leak."""
    customer.key.name = "ada-production"
    customer.key.save(update_fields=["name"])
    generation_id = customer.settle()
    BillingProfile.objects.update_or_create(
        account=customer.user,
        defaults={"country": "GB", "legal_name": "Lovelace Analytical Engines"},
    )
    topup = TopUpFactory(account=customer.user, buyer={"legal_name": "Lovelace Analytical Engines"})
    invoice = issue_invoice(topup=topup)
    return World(customer, generation_id, invoice.number)


@pytest.fixture
def staff(staff_client: StaffClientMaker) -> tuple[User, Client]:
    """A staff member holding every view permission, signed in to the console as themselves
    (with a password, as a person signing in would have)."""
    user, _ = staff_client(view_everything=True)
    user.set_password("a long enough password")
    user.save()
    return user, signed_in_client(user)


def body(response: HttpResponseBase) -> str:
    if response.streaming:
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def signed_in_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("name, template", PAGES + ACTIONS)
def test_anonymous_visitors_are_sent_to_sign_in(world: World, name: str, template: str) -> None:
    path = world.path(template)
    method = "post" if (name, template) in ACTIONS else "get"
    response = getattr(Client(), method)(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_anonymous_actions_change_nothing(world: World) -> None:
    for _, template in ACTIONS:
        Client().post(world.path(template), {"confirm": "DELETE", "amount": "20"})
    key = ApiKey.objects.get(pk=world.customer.key.pk)
    assert key.enabled and key.revoked_at is None
    assert ApiKey.objects.filter(account=world.customer.user).count() == 1
    assert world.customer.user.generations.count() == 1
    assert TopUp.objects.count() == 1  # the factory's, paid before
    assert world.customer.user.is_active


@pytest.fixture
def unverified(customer: Customer) -> Client:
    """A new customer who has not opened the verification link yet, with a billing country."""
    user = create_account(email="new@example.com", password="a long enough password")
    BillingProfile.objects.create(account=user, country="FR")
    return signed_in_client(user)


@pytest.mark.parametrize("name, template", [(n, p) for n, p in PAGES if (n, p) not in OBJECT_PAGES])
def test_an_unverified_customer_can_read_every_page(
    unverified: Client, name: str, template: str
) -> None:
    response = unverified.get(template)
    assert response.status_code == 200, name


def test_an_unverified_customer_cannot_create_a_key_and_is_offered_a_new_link(
    unverified: Client,
) -> None:
    response = unverified.post("/dashboard/keys", {"name": "ci", "enabled": "on"})
    page = body(response)
    assert response.status_code == 403
    assert 'action="/accounts/resend-verification/"' in page and "new@example.com" in page
    assert not ApiKey.objects.filter(account__email="new@example.com").exists()


def test_an_unverified_customer_cannot_start_a_top_up_and_is_offered_a_new_link(
    unverified: Client,
) -> None:
    quote = body(unverified.get("/billing/topup"))
    assert "Verify your email address" in quote and "/accounts/resend-verification/" in quote
    response = unverified.post("/billing/topup/confirm", {"amount": "20"})
    page = body(response)
    assert response.status_code == 400
    assert 'action="/accounts/resend-verification/"' in page
    assert not TopUp.objects.filter(account__email="new@example.com").exists()


@pytest.mark.parametrize("name, template", OBJECT_PAGES)
def test_another_accounts_object_ids_are_a_404(world: World, name: str, template: str) -> None:
    eve = make_customer("eve@example.com")
    method = "post" if (name, template) in ACTIONS else "get"
    response = getattr(eve.client, method)(world.path(template))
    assert response.status_code == 404, name
    key = ApiKey.objects.get(pk=world.customer.key.pk)
    assert key.enabled and key.revoked_at is None
    assert ApiKey.objects.filter(account=world.customer.user).count() == 1


@pytest.mark.parametrize("name, template", PAGES)
def test_staff_see_their_own_account_and_nothing_of_the_customers(
    world: World, staff: tuple[User, Client], name: str, template: str
) -> None:
    _, client = staff
    response = client.get(world.path(template))
    if (name, template) in OBJECT_PAGES:
        assert response.status_code == 404, name
        return
    assert response.status_code == 200, name
    page = body(response)
    leaked = [s for s in world.secrets() if s in page]
    assert leaked == [], name


def test_the_customer_sees_on_their_own_pages_what_staff_never_see(world: World) -> None:
    """The control for the staff test: every secret is on some page of the customer's own."""
    shown = "".join(body(world.customer.client.get(world.path(t))) for _, t in PAGES)
    assert [s for s in world.secrets() if s not in shown] == []


def test_staff_data_export_holds_only_their_own_account(
    world: World, staff: tuple[User, Client]
) -> None:
    user, client = staff
    response = client.post("/dashboard/settings/data/export")
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as archive:
        contents = {name: archive.read(name).decode() for name in archive.namelist()}
    assert json.loads(contents["profile.json"])["email"] == user.email
    everything = "".join(contents.values())
    assert [s for s in world.secrets() if s in everything] == []


def test_staff_actions_never_touch_the_customers_account(
    world: World, staff: tuple[User, Client]
) -> None:
    user, client = staff
    for name, template in OBJECT_PAGES:
        if (name, template) in ACTIONS:
            assert client.post(world.path(template)).status_code == 404, name
    assert not AuditEntry.objects.filter(account=world.customer.user, actor=user).exists()
    assert ApiKey.objects.filter(account=world.customer.user).count() == 1


def _console_and_billing_names() -> set[str]:
    names = set()
    for entry in get_resolver().url_patterns:
        namespace = getattr(entry, "namespace", None)
        if namespace not in ("console", "billing"):
            continue
        for pattern in entry.url_patterns:
            assert isinstance(pattern, URLPattern)
            names.add(f"{namespace}:{pattern.name}")
    return names


def test_every_console_and_billing_page_is_in_the_matrix() -> None:
    covered = {name for name, _ in PAGES + ACTIONS} | PUBLIC
    # The key list's POST (key creation) is covered by the unverified test above.
    assert _console_and_billing_names() - covered == set()
