"""Races on PostgreSQL: threads, each on its own connection, released together by a barrier.

A naive check-then-write design (read status, then credit) fails these: both threads read
"pending" before either writes.
"""

import os
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from billing.ledger import get_wallet
from billing.models import LedgerEntry, LedgerKind, TopUp
from billing.webhooks import process_event
from tests.factories import TopUpFactory

ON_POSTGRES = os.environ.get("DATABASE_URL", "").startswith("postgres")
pytestmark = [
    pytest.mark.skipif(not ON_POSTGRES, reason="needs DATABASE_URL (PostgreSQL)"),
    pytest.mark.django_db(transaction=True),
]


def run_together(tasks: list[Callable[[], Any]]) -> list[Any]:
    barrier = threading.Barrier(len(tasks))
    results: list[Any] = [None] * len(tasks)

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = tasks[i]()
        except Exception as exc:  # collected, asserted by the caller
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(tasks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def event(event_id: str, type: str, topup: TopUp) -> dict[str, Any]:
    session = {
        "id": topup.stripe_session_id,
        "object": "checkout.session",
        "payment_status": "paid",
        "payment_intent": f"pi_{topup.pk}",
        "metadata": {"topup_id": str(topup.pk)},
    }
    return {"id": event_id, "type": type, "data": {"object": session}}


@pytest.mark.parametrize("round_", range(3))
def test_parallel_deliveries_of_one_event_credit_once(round_: int) -> None:
    topup = TopUpFactory()
    same = event(f"evt_same_{round_}", "checkout.session.completed", topup)
    results = run_together([lambda: process_event(same) for _ in range(8)])
    assert not [r for r in results if isinstance(r, Exception)]
    assert LedgerEntry.objects.filter(account=topup.account, kind=LedgerKind.TOPUP).count() == 1
    assert get_wallet(topup.account_id).balance_micros == 1000 * 1_000_000


@pytest.mark.parametrize("round_", range(3))
def test_completed_and_async_succeeded_racing_credit_once(round_: int) -> None:
    topup = TopUpFactory()
    events = [
        event(f"evt_c_{round_}_{i}", "checkout.session.completed", topup) for i in range(3)
    ] + [
        event(f"evt_a_{round_}_{i}", "checkout.session.async_payment_succeeded", topup)
        for i in range(3)
    ]
    results = run_together([lambda e=e: process_event(e) for e in events])
    assert not [r for r in results if isinstance(r, Exception)]
    assert LedgerEntry.objects.filter(account=topup.account, kind=LedgerKind.TOPUP).count() == 1
    assert topup.invoices.count() == 1
