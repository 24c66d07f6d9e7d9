"""The dashboard's widgets against hand-built usage (settled through the real path)."""

import re
from datetime import timedelta

import pytest
from django.test import Client

from console.widgets import RECENT_ROWS
from tests.console.conftest import NOW, Customer, make_customer

pytestmark = pytest.mark.django_db


def page(customer: Customer, query: str = "") -> str:
    response = customer.client.get("/dashboard" + query)
    assert response.status_code == 200
    return response.content.decode()


def section(html: str, heading_id: str) -> str:
    """The text of one widget, tags removed, whitespace folded."""
    start = html.index(f'id="{heading_id}"')
    end = html.index("</section>", start)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html[start:end]))


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard/credits", "/dashboard/export.csv"])
def test_anonymous_visitors_are_sent_to_sign_in(db: None, path: str) -> None:
    response = Client().get(path)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_an_empty_account_sees_zeroes_and_what_to_do(customer: Customer, frozen_today) -> None:
    html = page(customer)
    assert "100.00 credits" in section(html, "w-balance")
    assert "Nothing spent yet this month" in html
    assert "No requests yet today" in html
    assert "No usage in the last 30 days" in html
    assert "No requests match these filters" in html
    eco = section(html, "w-eco")
    assert "0 Wh" in eco and "—" in eco and "no usage with an eco estimate" in eco


def test_the_widgets_add_up_the_settled_requests(customer: Customer, frozen_today) -> None:
    customer.settle(model="demo/echo-small", prompt=100, completion=50, cost_micros=4000)
    customer.settle(model="demo/echo-small", prompt=10, completion=5, cost_micros=1500)
    customer.settle(
        model="demo/echo-large", provider="other", prompt=1000, completion=0, cost_micros=20000
    )
    customer.settle(
        model="demo/echo-large", at=NOW - timedelta(days=3), prompt=7, completion=3, cost_micros=500
    )
    html = page(customer)
    balance = section(html, "w-balance")
    # 100 credits less 0.004 + 0.0015 + 0.02 + 0.0005 credits.
    assert "99.974 credits" in balance and "Spent this month: 0.026" in balance
    today = section(html, "w-today")
    assert "1,165 tokens" in today and "0.0255 credits" in today
    assert today.index("demo/echo-large") < today.index("demo/echo-small")  # by tokens
    top = section(html, "w-top")
    assert "1,010 · 0.0205 cr" in top and "165 · 0.0055 cr" in top
    providers = section(html, "w-providers")
    assert "demo 3 75%" in providers and "other 1 25%" in providers
    assert html.count('href="/dashboard/transactions/') == 4


def test_an_account_with_one_model_shows_only_that_model(customer: Customer, frozen_today):
    customer.settle(model="demo/echo-small")
    html = page(customer)
    assert "demo/echo-large" not in html
    assert section(html, "w-top").count("demo/echo-small") == 1


def test_a_model_filter_narrows_every_widget_but_the_balance(customer: Customer, frozen_today):
    customer.settle(model="demo/echo-small", cost_micros=4000)
    customer.settle(model="demo/echo-large", cost_micros=9000, prompt=1, completion=1)
    html = page(customer, "?model=demo/echo-large")
    assert "2 tokens" in section(html, "w-today")
    assert "demo/echo-small" not in section(html, "w-top")
    assert html.count('href="/dashboard/transactions/') == 1
    assert "Spent this month: 0.013" in section(html, "w-balance")  # the balance is whole-account
    # The usage-today bar of a model links to this view filtered by it.
    assert "?start=2026-11-06&amp;end=2026-12-05&amp;model=demo%2Fecho-large" in page(customer)


def test_a_key_filter_keeps_the_other_keys_out(customer: Customer, frozen_today) -> None:
    from keys.actions import create_key

    other, _ = create_key(account=customer.user, name="ci")
    customer.settle(cost_micros=1000)
    customer.settle(cost_micros=2000, key=other, prompt=1, completion=1)
    html = page(customer, f"?key={other.pk}")
    assert "2 tokens" in section(html, "w-today")
    assert html.count('href="/dashboard/transactions/') == 1


def test_the_date_range_limits_the_table_and_the_charts(customer: Customer, frozen_today):
    customer.settle(at=NOW - timedelta(days=40), prompt=1, completion=1)
    customer.settle(prompt=2, completion=2)
    html = page(customer)
    assert html.count('href="/dashboard/transactions/') == 1
    html = page(customer, "?start=2026-10-01&end=2026-12-05")
    assert html.count('href="/dashboard/transactions/') == 2


def test_bad_filters_are_explained_not_an_error(customer: Customer, frozen_today) -> None:
    html = page(customer, "?start=yesterday&key=abc&sort=price&status=weird&end=2026-13-01")
    assert "is not a date" in html and "not a key id" in html
    assert "Unknown sort" in html and "Unknown status" in html


def test_the_table_sorts_by_cost(customer: Customer, frozen_today) -> None:
    cheap = customer.settle(cost_micros=100)
    dear = customer.settle(cost_micros=9000, at=NOW - timedelta(hours=1))
    html = page(customer, "?sort=-cost")
    assert html.index(dear) < html.index(cheap)
    html = page(customer, "?sort=cost")
    assert html.index(cheap) < html.index(dear)


def test_the_table_shows_the_newest_fifty(customer: Customer, frozen_today) -> None:
    for i in range(RECENT_ROWS + 3):
        customer.settle(at=NOW - timedelta(minutes=i), cost_micros=10)
    assert page(customer).count('href="/dashboard/transactions/') == RECENT_ROWS


def test_low_confidence_usage_gets_a_dash_and_the_reason(customer: Customer, frozen_today):
    # demo/echo-small has gross-band parameters in the catalogue: too uncertain to compare.
    customer.settle(model="demo/echo-small", accuracy="gross")
    eco = section(page(customer), "w-eco")
    assert "0.5 Wh" in eco and "0.1 gCO₂e" in eco
    assert "—" in eco and "saved" not in eco


def test_the_eco_widget_names_its_baseline(customer: Customer, frozen_today) -> None:
    eco = section(page(customer), "w-eco")
    assert "scaleway/llama-3.3-70b-instruct (operator default)" in eco


def test_another_accounts_data_never_shows(customer: Customer, frozen_today) -> None:
    other = make_customer("eve@example.com")
    theirs = other.settle(cost_micros=7777)
    html = page(customer)
    assert theirs not in html
    assert customer.client.get(f"/dashboard/transactions/{theirs}").status_code == 404
    assert other.client.get(f"/dashboard/transactions/{theirs}").status_code == 200


def test_a_smaller_model_than_the_baseline_shows_a_saving(customer: Customer, frozen_today):
    customer.settle(model="mistral/mistral-small-latest", provider="mistral", accuracy="accurate")
    eco = section(page(customer), "w-eco")
    assert "saved against the baseline" in eco and "confidence accurate" in eco


def test_a_larger_model_than_the_baseline_shows_the_gap_not_a_saving(customer, frozen_today):
    customer.settle(model="openai/gpt-4o", provider="openai", region="us-east", accuracy="accurate")
    eco = section(page(customer), "w-eco")
    assert "more than the baseline would have emitted" in eco and "saved" not in eco


def test_a_range_beyond_the_records_retention_says_the_charts_come_from_aggregates(
    customer: Customer, frozen_today
) -> None:
    assert "come from the daily aggregates alone" not in page(customer)
    html = page(customer, "?start=2025-10-01")
    assert "the days before 2025-11-05 come from the daily aggregates alone" in html
