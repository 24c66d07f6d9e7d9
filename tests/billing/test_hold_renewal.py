"""A live stream keeps its hold: the relay renews it while it runs, and the orphan reaper frees
only holds neither placed nor renewed within its window. Before, the reaper freed any hold
older than 30 minutes, stream running or not, and the settlement that followed was no longer
bounded by a hold (nor counted against the key's limits while it ran)."""

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.test import override_settings
from django.utils import timezone

from billing.models import Generation, Hold, KeySpend
from billing.spending import release_orphaned_holds, renew_hold, reserve_credits
from tests.conftest import needs_postgres
from tests.factories import Funded, make_funded
from tests.processes import shared_database_url, start_gateway_process
from tests.reliability.conftest import assert_books_exact, wait_until

WINDOW = timedelta(seconds=1.5)  # the reaper's window in these tests (30 minutes in production)
RENEW_SECONDS = "0.2"


def _reserve(f: Funded) -> int:
    return reserve_credits(
        account_id=f.user.pk,
        key_id=f.key.pk,
        key_name=f.key.name,
        daily_limit=f.key.daily_credit_limit,
        monthly_limit=None,
        amount_micros=500_000,
    ).hold_id


def test_a_renewed_hold_is_left_by_the_reaper_until_renewals_stop(transactional_db):
    f = make_funded(email="renewed@example.com", daily_credit_limit=Decimal("1"))
    hold_id = _reserve(f)
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Hold.objects.filter(pk=hold_id).update(created_at=an_hour_ago)

    assert renew_hold(hold_id)
    assert release_orphaned_holds() == 0
    assert Hold.objects.filter(pk=hold_id).exists()

    Hold.objects.filter(pk=hold_id).update(renewed_at=an_hour_ago)
    assert release_orphaned_holds() == 1
    assert_books_exact(f.user)
    assert not renew_hold(hold_id)  # gone: the relay learns it (and logs it)


def _stream_past_the_reaper_window(api: str, funded: Funded) -> None:
    """Start a stream that lasts well past WINDOW, run the reaper once the hold is older than
    WINDOW while the stream is still running, then read the stream to its end."""
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST",
            api + "/chat/completions",
            json={
                "model": "demo/echo-small",
                "messages": [{"role": "user", "content": "a long answer, please"}],
                "max_tokens": 500,
                "stream": True,
            },
            headers={"Authorization": f"Bearer {funded.token}"},
        ) as resp,
    ):
        lines = resp.iter_lines()
        assert next(lines).startswith("data: ")
        hold = Hold.objects.get(account=funded.user)
        wait_until(lambda: hold.created_at < timezone.now() - WINDOW)

        assert release_orphaned_holds(older_than=WINDOW) == 0
        hold.refresh_from_db()  # still there, and renewed by the relay
        assert hold.renewed_at is not None and hold.renewed_at > timezone.now() - WINDOW

        assert "data: [DONE]" in list(lines)  # the stream ran to its end
    assert_books_exact(funded.user, generations=1)
    gen = Generation.objects.get()
    assert gen.status == "ok" and gen.completion_tokens == 40 and gen.cost_micros > 0
    # The settlement was bounded by the hold it kept: the key's spend is exactly the cost.
    day = KeySpend.objects.get(key=funded.key, period="day")
    assert (day.spent_micros, day.reserved_micros) == (gen.cost_micros, 0)


@pytest.fixture
def slow_stream(upstream) -> None:
    # 40 tokens, one every 100 ms: about four seconds, well past WINDOW.
    upstream.config.chunk_interval_ms, upstream.config.completion_tokens = 100, 40


def test_a_live_stream_keeps_its_hold_past_the_reaper_window(
    gateway, funded, catalogue, slow_stream
):
    with override_settings(LOWROUTER_HOLD_RENEW_SECONDS=float(RENEW_SECONDS)):
        _stream_past_the_reaper_window(gateway.api, funded)


@pytest.fixture
def gateway_process(catalogue) -> Iterator[str]:
    """A gateway in a process of its own on the test database (the reaper runs in another
    process in production, the Celery worker; here, this test's)."""
    proc = start_gateway_process(
        shared_database_url(), LOWROUTER_HOLD_RENEW_SECONDS=RENEW_SECONDS, CONN_MAX_AGE="0"
    )
    try:
        yield proc.wait_ready().api
    finally:
        proc.stop()


@needs_postgres
def test_a_stream_served_by_another_process_keeps_its_hold_past_the_reaper_window(
    funded, slow_stream, gateway_process
):
    _stream_past_the_reaper_window(gateway_process, funded)
