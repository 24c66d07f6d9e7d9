"""Price changes: bounds, history, operator approval, remote lists and the platform fee schedule."""

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.models import User
from billing.models import Generation
from catalog import prices
from catalog.catalogue import sync_catalogue
from catalog.models import (
    FeeChangeStatus,
    Model,
    Offering,
    PlatformFeeChange,
    PriceChange,
    PriceChangeStatus,
    Provider,
)
from tests.catalog.conftest import FeedServer
from tests.conftest import make_operator

pytestmark = pytest.mark.django_db

CATALOGUE = """
providers:
  - id: acme
    name: Acme
    base_url: https://api.acme.example/v1
    credential_env: ACME_KEY
    billing_currency: USD
    price_list_url: {price_list_url}
models:
  - id: acme/big
    display_name: Big
    owner: acme
    context_window: 8192
    max_output_tokens: 1024
    platform_fee_per_1m: "{fee}"
    offerings:
      - provider: acme
        region: us-east
        upstream_model: big-1
        prompt_price: "{prompt}"
        completion_price: "4.00"
"""


def write(tmp_path: Path, prompt: str = "1.00", fee: str = "0.10", url: str = "") -> Path:
    path = tmp_path / "c.yaml"
    text = CATALOGUE.format(prompt=prompt, fee=fee, price_list_url=url or '""')
    path.write_text(text)
    return path


def offering() -> Offering:
    return Offering.objects.get(model_id="acme/big")


def test_a_small_price_change_applies_and_is_kept_in_history(tmp_path: Path) -> None:
    sync_catalogue(write(tmp_path))
    report = sync_catalogue(write(tmp_path, prompt="1.10"))
    assert report.prices_pending == 0
    assert offering().prompt_price == Decimal("1.10")
    history = prices.price_history(offering())
    assert [h.prompt_price for h in history] == [Decimal("1.00"), Decimal("1.10")]
    assert history[1].old_prompt_price == Decimal("1.00") and history[1].effective_at


def test_a_large_price_change_waits_for_operator_approval(tmp_path: Path) -> None:
    sync_catalogue(write(tmp_path))
    report = sync_catalogue(write(tmp_path, prompt="2.00"))
    assert report.prices_pending == 1
    assert offering().prompt_price == Decimal("1.00")  # still the old price
    pending = PriceChange.objects.get(status=PriceChangeStatus.PENDING)
    assert "prompt_price moved 100.0%" in pending.reason
    # The same proposal the next day does not queue a second approval.
    assert sync_catalogue(write(tmp_path, prompt="2.00")).prices_pending == 1
    assert PriceChange.objects.filter(status=PriceChangeStatus.PENDING).count() == 1

    admin = make_operator()
    client = Client()
    client.force_login(admin)
    client.post(
        "/admin/catalog/pricechange/",
        {"action": "approve", "_selected_action": [pending.pk]},
    )
    pending.refresh_from_db()
    assert pending.status == PriceChangeStatus.APPLIED
    assert pending.decided_by == "ops@example.com"
    assert offering().prompt_price == Decimal("2.00")
    assert not prices.approve_price_change(change_id=pending.pk, by="again")


def test_a_rejected_change_leaves_the_price(tmp_path: Path) -> None:
    sync_catalogue(write(tmp_path))
    sync_catalogue(write(tmp_path, prompt="0.10"))
    change = PriceChange.objects.get(status=PriceChangeStatus.PENDING)
    assert prices.reject_price_change(change_id=change.pk, by="ops")
    assert offering().prompt_price == Decimal("1.00")


def test_approve_prices_flag_applies_a_large_change(tmp_path: Path) -> None:
    sync_catalogue(write(tmp_path))
    sync_catalogue(write(tmp_path, prompt="3.00"), approve_prices=True)
    assert offering().prompt_price == Decimal("3.00")


def price_list(**overrides: object) -> bytes:
    doc = {
        "provider": "acme",
        "currency": "USD",
        "unit": "per_1m_tokens",
        "prices": [{"upstream_model": "big-1", "prompt": "1.05", "completion": "4.00"}],
    }
    doc.update(overrides)
    return json.dumps(doc).encode()


def test_a_remote_price_list_is_validated_and_applied(tmp_path: Path, feed: FeedServer) -> None:
    sync_catalogue(write(tmp_path, url=feed.url + "/prices.json"))
    feed.serve("/prices.json", price_list(), ctype="application/json")
    [report] = prices.ingest_price_lists()
    assert (report.applied, report.pending, report.error) == (1, 0, "")
    assert offering().prompt_price == Decimal("1.05")
    assert prices.price_history(offering())[-1].source.startswith("url:http://127.0.0.1")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (price_list(currency="EUR"), "bills in USD"),
        (price_list(unit="per_token"), "per_1m_tokens"),
        (
            price_list(prices=[{"upstream_model": "big-1", "prompt": "-1", "completion": "1"}]),
            "prompt",
        ),
        (
            price_list(prices=[{"upstream_model": "big-1", "prompt": "1e9", "completion": "1"}]),
            "sane bound",
        ),
        (b"{not json", "JSONDecodeError"),
    ],
)
def test_a_bad_remote_price_list_is_refused_whole(
    tmp_path: Path, feed: FeedServer, body: bytes, error: str
) -> None:
    sync_catalogue(write(tmp_path, url=feed.url + "/prices.json"))
    feed.serve("/prices.json", body, ctype="application/json")
    [report] = prices.ingest_price_lists()
    assert error in report.error
    assert offering().prompt_price == Decimal("1.00")


def used_by(email: str, model_id: str) -> None:
    user = User.objects.create_user(email=email, password="pw-1")
    Generation.objects.create(
        account=user, requested_model=model_id, resolved_model=model_id, status="ok"
    )


def test_a_fee_increase_is_scheduled_30_days_ahead_and_announced_to_its_users(
    tmp_path: Path, django_capture_on_commit_callbacks
) -> None:
    sync_catalogue(write(tmp_path))
    used_by("alice@example.com", "acme/big")
    used_by("bob@example.com", "other/model")
    with django_capture_on_commit_callbacks(execute=True):
        report = sync_catalogue(write(tmp_path, fee="0.20"))
    assert report.fees_scheduled == 1
    model = Model.objects.get(id="acme/big")
    assert model.platform_fee_per_1m == Decimal("0.10")  # not yet
    change = PlatformFeeChange.objects.get(status=FeeChangeStatus.SCHEDULED)
    assert change.effective_at - timezone.now() >= timedelta(days=29, hours=23)
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]
    assert "0.20" in mail.outbox[0].body
    change.refresh_from_db()
    assert change.announced_to == 1

    assert prices.apply_due_fee_changes() == 0
    PlatformFeeChange.objects.filter(pk=change.pk).update(effective_at=timezone.now())
    assert prices.apply_due_fee_changes() == 1
    model.refresh_from_db()
    assert model.platform_fee_per_1m == Decimal("0.20")


def test_a_fee_decrease_applies_at_once(tmp_path: Path) -> None:
    sync_catalogue(write(tmp_path))
    assert sync_catalogue(write(tmp_path, fee="0.05")).fees_scheduled == 0
    assert Model.objects.get(id="acme/big").platform_fee_per_1m == Decimal("0.05")


def test_the_admin_refuses_a_fee_increase_with_short_notice(tmp_path: Path) -> None:
    sync_catalogue(write(tmp_path))
    client = Client()
    client.force_login(make_operator())
    soon = (timezone.now() + timedelta(days=5)).strftime("%Y-%m-%d")
    response = client.post(
        "/admin/catalog/platformfeechange/add/",
        {"model": "acme/big", "new_fee": "0.50", "effective_at_0": soon, "effective_at_1": "00:00"},
    )
    assert response.status_code == 200 and "30 days" in response.content.decode()
    assert not PlatformFeeChange.objects.exists()


def test_the_daily_task_runs_every_step(tmp_path: Path, feed: FeedServer, settings) -> None:
    from catalog.fx import oldest_fresh_ecb_date
    from catalog.tasks import daily_ingest
    from tests.catalog.conftest import DEFAULT_RATES

    settings.LOWROUTER_CATALOGUE_FILE = str(write(tmp_path, url=feed.url + "/prices.json"))
    feed.serve_rates({oldest_fresh_ecb_date(): DEFAULT_RATES})
    feed.serve("/prices.json", price_list(), ctype="application/json")
    result = daily_ingest.apply().get()
    assert result["fx_ok"] and result["fx_stale"] == []
    assert result["price_lists"] == [{"provider": "acme", "applied": 1, "pending": 0, "error": ""}]
    assert Provider.objects.filter(id="acme").exists()


def test_a_price_typed_in_the_admin_is_kept_in_history(tmp_path: Path) -> None:
    sync_catalogue(write(tmp_path))
    o = offering()
    client = Client()
    client.force_login(make_operator())
    response = client.post(
        f"/admin/catalog/offering/{o.pk}/change/",
        {
            "model": "acme/big",
            "provider": "acme",
            "region": "us-east",
            "upstream_model": "big-1",
            "prompt_price": "1.25",
            "completion_price": "4.00",
            "cached_prompt_price": "",
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    last = prices.price_history(offering())[-1]
    assert (last.old_prompt_price, last.prompt_price) == (Decimal("1.00"), Decimal("1.25"))
    assert last.source == "admin:ops@example.com"
