"""What the billing models answer themselves: their API and page representations, and the
lookups every caller makes the same way (on the model's manager, not in views)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Generation, Hold, Invoice, LedgerEntry
from billing.spending import ORPHAN_AFTER
from tests.factories import make_funded

pytestmark = pytest.mark.django_db


def make_generation(account_id: int, **fields: object) -> Generation:
    values = {
        "requested_model": "demo/echo-small",
        "resolved_model": "demo/echo-small",
        "status": "ok",
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "total_tokens": 30,
        "cost_micros": 1_234_567,
        "prompt_price_eur": Decimal("1.250000"),
        "platform_fee_eur": None,
        **fields,
    }
    return Generation.objects.create(account_id=account_id, **values)


def test_a_generation_renders_its_usage_record_for_the_api():
    f = make_funded()
    gen = make_generation(
        f.user.pk,
        key=f.key,
        completed_at=timezone.now(),
        methodology_version="v0.4-2026-01",
        energy_wh=0.25,
        carbon_g=0.0625,
        eco_accuracy="gross",
        eco_inputs={"grid_g_per_kwh": 250.0},
    )
    record = gen.to_api()
    assert record["generation_id"] == gen.id and record["key_id"] == f.key.pk
    assert (record["cost_credits"], record["unbilled_credits"]) == ("1.234567", "0.000000")
    assert record["prices_eur_per_1m"]["prompt"] == "1.250000"
    assert record["prices_eur_per_1m"]["platform_fee"] is None
    assert record["error_code"] is None and record["completed_at"] is not None
    assert record["eco"] == gen.eco_to_api()
    assert record["eco"]["methodology_version"] == "v0.4-2026-01"
    assert record["eco"]["inputs"] == {"grid_g_per_kwh": 250.0}


def test_a_generation_without_an_estimate_has_no_eco_block():
    gen = make_generation(make_funded().user.pk)
    assert gen.eco_to_api() is None
    assert gen.to_api()["eco"] is None


def test_an_accounts_generations_leave_out_every_other_accounts():
    mine, theirs = make_funded("me@example.com"), make_funded("them@example.com")
    own = make_generation(mine.user.pk)
    make_generation(theirs.user.pk)
    assert list(Generation.objects.for_account(mine.user.pk)) == [own]


def test_orphaned_holds_are_those_created_before_the_cutoff():
    f = make_funded()
    now = timezone.now()
    hold = {"account": f.user, "key": f.key, "amount_micros": 1, "day": now, "month": now}
    old = Hold.objects.create(**hold, created_at=now - ORPHAN_AFTER - timedelta(seconds=1))
    Hold.objects.create(**hold, created_at=now)
    assert list(Hold.objects.orphaned(created_before=now - ORPHAN_AFTER)) == [old]


def test_an_accounts_ledger_total_is_its_balance():
    f = make_funded(credits=Decimal("2"))
    make_funded("other@example.com", credits=Decimal("5"))
    LedgerEntry.objects.create(account=f.user, kind="adjustment", amount_micros=-500_000)
    assert LedgerEntry.objects.for_account(f.user.pk).total_micros() == 1_500_000


def test_an_invoice_shows_its_gross_amount_in_euros():
    assert Invoice(gross_cents=1250).gross_display == "EUR 12.50"
    assert Invoice(gross_cents=7).gross_display == "EUR 0.07"
