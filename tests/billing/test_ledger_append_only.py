"""The ledger is append-only: an entry is written once, at its final amount, and stays.

Settlement writes its usage entry at what the wallet paid, also when a concurrent writer took
the credit it had counted on; purging a usage record leaves its entry; on PostgreSQL a trigger
refuses any other change.
"""

import threading
import time
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from billing.ids import new_generation_id
from billing.ledger import ledger_sum
from billing.models import Generation, LedgerEntry, Wallet
from billing.spending import MoneyCore, Settlement, reserve_credits, settle_generation
from tests.conftest import needs_postgres
from tests.factories import make_funded

pytestmark = pytest.mark.django_db(transaction=True)


def outcome(cost: int) -> Settlement:
    return Settlement(
        requested_model="demo/echo-small",
        resolved_model="demo/echo-small",
        status="ok",
        provider="demo",
        region="local",
        prompt_tokens=10,
        completion_tokens=20,
        cost_micros=cost,
        created_at=timezone.now() - timedelta(seconds=1),
        generation_id=new_generation_id(),
    )


def reserve(f, amount: int) -> object:
    return reserve_credits(
        account_id=f.user.pk,
        key_id=f.key.pk,
        key_name=f.key.name,
        daily_limit=None,
        monthly_limit=None,
        amount_micros=amount,
    )


def test_deleting_a_generation_keeps_its_ledger_entry_and_amount():
    f = make_funded(credits=Decimal("1"))
    done = outcome(300_000)
    settle_generation(hold=reserve(f, 500_000), outcome=done)
    entry = LedgerEntry.objects.get(generation_id=done.generation_id)

    Generation.objects.filter(pk=done.generation_id).delete()

    entry.refresh_from_db()
    assert entry.generation_id is None
    assert (entry.kind, entry.amount_micros, entry.reference) == (
        "usage",
        -300_000,
        done.generation_id,
    )
    assert Wallet.objects.get(account=f.user).balance_micros == ledger_sum(f.user) == 700_000


@needs_postgres
def test_postgres_refuses_to_change_or_delete_a_ledger_entry():
    f = make_funded(credits=Decimal("1"))
    entry = LedgerEntry.objects.get(account=f.user)
    before = LedgerEntry.objects.filter(pk=entry.pk).values().get()
    for change in (
        lambda: LedgerEntry.objects.filter(pk=entry.pk).update(amount_micros=1),
        lambda: LedgerEntry.objects.filter(pk=entry.pk).update(reason="edited"),
        lambda: LedgerEntry.objects.filter(pk=entry.pk).update(actor=f.user),
        lambda: LedgerEntry.objects.filter(pk=entry.pk).delete(),
    ):
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
            change()
    assert LedgerEntry.objects.filter(pk=entry.pk).values().get() == before


def backend_pid() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return cur.fetchone()[0]


@needs_postgres
@pytest.mark.parametrize("core", [MoneyCore.SQL_FUNCTIONS, MoneyCore.STATEMENTS])
def test_a_settlement_raced_for_the_free_credit_writes_its_entry_once_at_what_was_paid(core):
    """An overrun (900,000 due on a 500,000 hold) counts on free credit; a reservation made
    while the settlement waits for the wallet takes 400,000 of it. The entry is written once,
    at the 600,000 then payable, and the rest stays on the record as unbilled."""
    f = make_funded(credits=Decimal("1"))
    hold = reserve(f, 500_000)
    late = outcome(900_000)
    settled: dict = {}

    def settle_in_thread() -> None:
        try:
            settled["pid"] = backend_pid()
            settled["result"] = settle_generation(hold=hold, outcome=late, core=core)
        finally:
            connection.close()

    params = connection.settings_dict
    with psycopg.connect(
        dbname=params["NAME"], user=params["USER"], host=params["HOST"], port=params["PORT"] or None
    ) as other:
        # Another request's reservation, not committed yet: it holds the wallet's row lock.
        refused = other.execute(
            "SELECT refused FROM lowrouter_reserve(%s, %s, 400000, current_date, current_date,"
            " %s, %s, now(), NULL)",
            [f.user.pk, f.key.pk, 2**62, 2**62],
        ).fetchone()[0]
        assert refused is None
        thread = threading.Thread(target=settle_in_thread)
        thread.start()
        deadline = time.monotonic() + 10
        while True:
            pid = settled.get("pid")
            if pid and other.execute("SELECT pg_blocking_pids(%s)", [pid]).fetchone()[0]:
                break  # the settlement waits for the wallet's row
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.01)
        other.commit()
    thread.join(timeout=10)

    assert settled["result"] == (600_000, 400_000)
    gen = Generation.objects.get(pk=late.generation_id)
    assert (gen.cost_micros, gen.unbilled_micros) == (600_000, 300_000)
    entries = LedgerEntry.objects.filter(account=f.user, kind="usage")
    assert [(e.generation_id, e.amount_micros) for e in entries] == [(gen.id, -600_000)]
    wallet = Wallet.objects.get(account=f.user)
    assert (wallet.balance_micros, wallet.reserved_micros) == (400_000, 400_000)
    assert wallet.balance_micros == ledger_sum(f.user)
