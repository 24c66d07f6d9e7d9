"""The customer console: the dashboard, one transaction, the CSV export, credits.

Thin views: read the filters from the URL, ask ``console.widgets`` for the numbers, render.
Every page is the signed-in customer's own data only; another account's record is a 404.
"""

from collections.abc import AsyncIterator, Iterator
from datetime import date
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.http import AuthenticatedHttpRequest
from billing.models import Generation, GenerationStatus, Invoice
from billing.money import format_eur, token_cost_micros
from catalog.snapshot import get_snapshot
from console import charts, history, widgets
from console.export import EXPORT_CAP, csv_lines
from console.filters import Filters, parse_filters
from console.formatting import credits, tokens

SORT_COLUMNS = [
    ("time", "Time"),
    ("model", "Model"),
    ("tokens", "Tokens"),
    ("cost", "Cost"),
    ("latency", "Latency"),
]


def records_kept_from(today: date) -> date:
    """The first day whose records are still kept: 13 months back (docs/console.md)."""
    months = settings.LOWROUTER_RECORD_RETENTION_MONTHS
    year, month = divmod(today.year * 12 + today.month - 1 - months, 12)
    return date(year, month + 1, min(today.day, 28))


def _today() -> date:
    return timezone.now().date()


def _filters(request: HttpRequest) -> Filters:
    return parse_filters(request.GET, today=_today())


@login_required
def dashboard(request: AuthenticatedHttpRequest) -> HttpResponse:
    account_id = request.user.pk
    f = _filters(request)
    today = _today()
    charts_filters = f.without_table_filters()
    series = widgets.daily_series(account_id, charts_filters)
    shares = widgets.provider_shares(account_id, charts_filters)
    # The table shows no trace or eco inputs: their JSON is most of a record's bytes.
    rows = list(
        widgets.transactions(account_id, f).defer("routing_trace", "eco_inputs")[
            : widgets.RECENT_ROWS
        ]
    )
    in_range = widgets.requests_in_range(account_id, charts_filters)
    context = {
        "f": f,
        "balance": widgets.balance_widget(account_id, today),
        "today": widgets.usage_today(account_id, charts_filters, today),
        "top": widgets.top_models(account_id, charts_filters, today),
        "eco": widgets.eco_widget(account_id, charts_filters, get_snapshot()),
        "series": series,
        "models_legend": list(series.tokens_by_model),
        "usage_chart": charts.stacked_columns(
            "Tokens per day, by model", series.days, series.tokens_by_model, tokens
        ),
        "cost_chart": charts.columns(
            "Credits per day", series.days, series.cost_by_day, lambda m: credits(int(m))
        ),
        "day_rows": _day_rows(series),
        "shares": shares,
        "donut": charts.donut(
            "Requests by provider",
            [(s.name, s.fraction, f"{s.requests} requests") for s in shares],
        ),
        "rows": rows,
        "choices": widgets.filter_choices(account_id, charts_filters),
        "export_capped": in_range > EXPORT_CAP,
        "export_cap": EXPORT_CAP,
        "records_kept_from": records_kept_from(today),
        "retention_months": settings.LOWROUTER_RECORD_RETENTION_MONTHS,
        "statuses": GenerationStatus.values,
        "sort_columns": SORT_COLUMNS,
    }
    return render(request, "console/dashboard.html", context)


def _day_rows(series: widgets.DailySeries) -> list[tuple[date, int, int]]:
    """Per day: tokens (all models) and credits, for the charts' table fallback."""
    return [
        (day, sum(v[i] for v in series.tokens_by_model.values()), series.cost_by_day[i])
        for i, day in enumerate(series.days)
    ]


@login_required
def transaction(request: AuthenticatedHttpRequest, generation_id: str) -> HttpResponse:
    gen = (
        Generation.objects.filter(pk=generation_id[:40], account=request.user)
        .select_related("key")
        .first()
    )
    if gen is None:
        raise Http404("No such transaction on this account.")
    context = {"gen": gen, "trace": gen.routing_trace, "price_lines": _price_lines(gen)}
    return render(request, "console/transaction.html", context)


def _price_lines(gen: Generation) -> list[tuple[str, int, Decimal, int]]:
    """How the cost was reached: (part, tokens, EUR per 1M with the platform fee, micros)."""
    if gen.prompt_price_eur is None or gen.completion_price_eur is None:
        return []
    fee = gen.platform_fee_eur or Decimal(0)
    cached_rate = (
        gen.cached_prompt_price_eur
        if gen.cached_prompt_price_eur is not None
        else gen.prompt_price_eur
    )
    parts = [
        ("Prompt", gen.prompt_tokens - gen.cached_prompt_tokens, gen.prompt_price_eur + fee),
        ("Cached prompt", gen.cached_prompt_tokens, cached_rate + fee),
        ("Completion", gen.completion_tokens, gen.completion_price_eur + fee),
    ]
    return [
        (name, n, rate, token_cost_micros(n, rate))
        for name, n, rate in parts
        if n or name != "Cached prompt"
    ]


def _batches(lines: Iterator[str], size: int = 500) -> str:
    out = []
    for line in lines:
        out.append(line)
        if len(out) == size:
            break
    return "".join(out)


async def _stream(lines: Iterator[str]) -> AsyncIterator[str]:
    # The database cursor lives in the request's thread: advanced there, 500 rows at a time.
    take = sync_to_async(_batches, thread_sensitive=True)
    while chunk := await take(lines):
        yield chunk


@login_required
def export_csv(request: AuthenticatedHttpRequest) -> StreamingHttpResponse:
    f = _filters(request)
    records = widgets.transactions(request.user.pk, f)
    lines = csv_lines(records)
    # Under ASGI Django would gather a synchronous iterator into memory before sending it.
    content = _stream(lines) if isinstance(request, ASGIRequest) else lines
    response = StreamingHttpResponse(content, content_type="text/csv")
    name = f"lowrouter-transactions-{f.start.isoformat()}-{f.end.isoformat()}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@login_required
def credits_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    account_id = request.user.pk
    lines = history.wallet_history(account_id)
    page = Paginator(lines, 50).get_page(request.GET.get("page"))
    invoices = [
        (invoice, format_eur(invoice.gross_cents))
        for invoice in Invoice.objects.filter(account_id=account_id).select_related("replaces")
    ]
    context = {
        "balance": widgets.balance_widget(account_id, _today()),
        "page": page,
        "invoices": invoices,
    }
    return render(request, "console/credits.html", context)
