"""One transaction's page, the CSV export, the credits page, and what each page weighs."""

import csv
import io
import re
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders

from billing.models import DailyUsage, Generation
from billing.usage import reconcile_daily_usage
from console.export import COLUMNS
from tests.console.conftest import NOW, Customer

pytestmark = pytest.mark.django_db


def export(customer: Customer, query: str = "") -> list[dict]:
    response = customer.client.get("/dashboard/export.csv" + query)
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    assert response.streaming
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_the_transaction_page_shows_the_whole_record(customer: Customer, frozen_today) -> None:
    gen_id = customer.settle(prompt=1200, completion=300, cost_micros=12345)
    html = customer.client.get(f"/dashboard/transactions/{gen_id}").content.decode()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    assert f'data-copy="{gen_id}"' in html
    assert "demo / eu-west" in text and "120 ms" in text
    assert "1,200 prompt + 300 completion = 1,500" in text
    assert "0.012345 credits" in text
    assert "Prompt 1,200 10.5" in text and "Completion 300 30.5" in text  # fee included
    assert "v0.4-2026-01" in text and "medium" in text
    assert "because: cheapest" in text and "demo / eu-west: ok" in text


def test_an_unknown_transaction_is_a_404(customer: Customer) -> None:
    assert customer.client.get("/dashboard/transactions/gen-nope").status_code == 404
    assert customer.client.get("/dashboard/transactions/" + "x" * 300).status_code == 404


def test_the_export_has_the_record_schema_and_the_key_name(customer: Customer, frozen_today):
    gen_id = customer.settle(prompt=7, completion=3, cost_micros=4000, energy_wh=1.2e-05)
    rows = export(customer)
    assert list(rows[0]) == list(COLUMNS)
    row = rows[0]
    assert row["generation_id"] == gen_id and row["key_name"] == "main"
    assert row["created_at"] == "2026-12-05T12:00:00Z"
    assert row["cost_credits"] == "0.004000" and row["total_tokens"] == "10"
    assert row["eco_energy_wh"] == "0.000012"  # plain decimal, never 1.2e-05
    assert row["usage_source"] == "reported"


def test_the_export_follows_the_filters(customer: Customer, frozen_today) -> None:
    customer.settle(model="demo/echo-small")
    customer.settle(model="demo/echo-large")
    customer.settle(model="demo/echo-large", at=NOW - timedelta(days=60))
    assert len(export(customer)) == 2
    assert [r["resolved_model"] for r in export(customer, "?model=demo/echo-large")] == [
        "demo/echo-large"
    ]


def test_the_daily_totals_of_the_charts_are_reproducible_from_the_export(
    customer: Customer, frozen_today
) -> None:
    for days_ago, model, cost in [
        (0, "demo/echo-small", 4000),
        (0, "demo/echo-large", 700),
        (1, "demo/echo-small", 1234),
        (5, "demo/echo-large", 99),
    ]:
        customer.settle(model=model, cost_micros=cost, at=NOW - timedelta(days=days_ago))
    totals: dict = defaultdict(lambda: [0, Decimal(0)])
    for row in export(customer):
        day = row["created_at"][:10]
        totals[day][0] += int(row["total_tokens"])
        totals[day][1] += Decimal(row["cost_credits"])
    per_day = defaultdict(lambda: [0, 0])
    for u in DailyUsage.objects.filter(account=customer.user):
        per_day[u.day.isoformat()][0] += u.total_tokens
        per_day[u.day.isoformat()][1] += u.cost_micros
    assert {d: [t, Decimal(c) / 1_000_000] for d, (t, c) in per_day.items()} == totals
    assert len(totals) == 3
    assert reconcile_daily_usage(first=NOW.date() - timedelta(days=30), last=NOW.date()) == []


def test_the_export_stops_at_its_cap_and_says_so(customer: Customer, frozen_today, monkeypatch):
    monkeypatch.setattr("console.views.EXPORT_CAP", 2)
    monkeypatch.setattr("console.export.EXPORT_CAP", 2)
    for i in range(3):
        customer.settle(at=NOW - timedelta(minutes=i))
    from console import export as export_module

    text = "".join(export_module.csv_lines(Generation.objects.all(), cap=2))
    assert text.count("\n") == 4 and text.endswith(
        "# capped at 2 rows: narrow the date range to export the rest\r\n"
    )
    assert "export stops at 2 rows" in customer.client.get("/dashboard").content.decode()


def test_the_credits_page_shows_the_wallet_history_with_running_balance(
    customer: Customer, frozen_today
) -> None:
    customer.settle(cost_micros=4000)
    customer.settle(cost_micros=1000)
    html = customer.client.get("/dashboard/credits").content.decode()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    assert "99.995 credits" in text
    assert "Usage on 2026-12-05 2 requests -0.005 99.995" in text
    assert "+100.00 100.00" in text  # the initial grant, and the balance after it
    assert 'action="/billing/topup"' in html and 'action="/billing/redeem"' in html


@pytest.mark.parametrize(
    "path", ["/dashboard", "/dashboard/credits", "/dashboard/transactions/{gen}"]
)
def test_every_console_page_weighs_under_100_kb(customer: Customer, frozen_today, path) -> None:
    gen = ""
    for i in range(60):
        gen = customer.settle(
            at=NOW - timedelta(hours=i), model=f"demo/echo-{'small' if i % 2 else 'large'}"
        )
    html = customer.client.get(path.format(gen=gen)).content
    static = sum(
        Path(finders.find(url.decode().removeprefix("/static/"))).stat().st_size
        for url in re.findall(rb'(?:href|src)="(/static/[^"]+)"', html)
    )
    assert static > 5_000  # the stylesheet and script were found and counted
    assert len(html) + static < 100_000, (len(html), static)
