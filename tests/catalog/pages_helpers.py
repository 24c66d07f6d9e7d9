"""A small catalogue for the page tests: one provider per billing currency, and stored ECB
rates as a good FX ingest leaves them."""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from catalog.fx import oldest_fresh_ecb_date
from catalog.models import Currency, FxIngestRun, FxRate, Model, Offering, Provider
from catalog.snapshot import mark_catalog_changed

DEEPSEEK_HANDLING = {
    "launch_status": "Live",
    "retention": "Mainland China endpoint; retention follows DeepSeek's terms for the account.",
    "training_use": "LowRouter does not train on prompts; DeepSeek may apply its own processing.",
    "notes": "Official China-route endpoint.",
}


@dataclass
class PageCatalogue:
    eur_model: Model
    usd_model: Model
    cny_model: Model


def add(
    model_id: str,
    provider: Provider,
    region: str,
    prices: tuple[str, str, str | None],
    **fields: object,
) -> Model:
    model = Model.objects.create(
        id=model_id,
        display_name=fields.pop("display_name", model_id.split("/")[1]),
        owner=fields.pop("owner", model_id.split("/")[0]),
        max_output_tokens=4096,
        **fields,
    )
    Offering.objects.create(
        model=model,
        provider=provider,
        region=region,
        upstream_model=model_id.split("/")[1],
        prompt_price=Decimal(prices[0]),
        completion_price=Decimal(prices[1]),
        cached_prompt_price=Decimal(prices[2]) if prices[2] else None,
    )
    return model


def store_rates(rates: dict[str, str]) -> None:
    """The rows a successful ingest stores: today's usable ECB date, and an ok run."""
    day = oldest_fresh_ecb_date()
    for currency, quote in rates.items():
        FxRate.objects.create(currency=currency, ecb_date=day, quote=Decimal(quote))
    FxIngestRun.objects.create(
        started_at=timezone.now() - timedelta(hours=1),
        source_url="http://127.0.0.1/eurofxref-daily.xml",
        ok=True,
        newest_ecb_date=day,
        rates_stored=len(rates),
    )


def make_page_catalogue(*, with_rates: bool = True) -> PageCatalogue:
    def provider(pid: str, name: str, currency: str, **extra: object) -> Provider:
        return Provider.objects.create(
            id=pid,
            name=name,
            base_url=f"https://{pid}.invalid/v1",
            billing_currency=currency,
            requires_credential=False,
            **extra,
        )

    scaleway = provider("scaleway", "Scaleway", Currency.EUR)
    openai = provider("openai", "OpenAI", Currency.USD)
    deepseek = provider(
        "deepseek", "DeepSeek (China)", Currency.CNY, data_handling=DEEPSEEK_HANDLING
    )
    eur_model = add(
        "scaleway/llama-3.3-70b-instruct",
        scaleway,
        "eu-west",
        ("0.90", "0.90", None),
        display_name="Llama 3.3 70B Instruct",
        owner="meta",
        context_window=131072,
        supports_tools=True,
        active_params_b=Decimal("70"),
        params_accuracy="accurate",
    )
    usd_model = add(
        "openai/gpt-4o-mini",
        openai,
        "us-east",
        ("0.15", "0.60", "0.075"),
        display_name="GPT-4o mini",
        context_window=128000,
        supports_tools=True,
        supports_vision=True,
        supports_structured_output=True,
        active_params_b=Decimal("8"),
        params_accuracy="gross",
    )
    cny_model = add(
        "deepseek/deepseek-chat",
        deepseek,
        "cn-east",
        ("2.00", "3.00", "0.20"),
        display_name="DeepSeek V3.2 (chat)",
        context_window=65536,
        supports_tools=True,
        active_params_b=Decimal("37"),
        params_accuracy="medium",
        lifecycle="deprecated",
        sunset_at=timezone.now() + timedelta(days=40),
        replacement="scaleway/llama-3.3-70b-instruct",
        platform_fee_per_1m=Decimal("0.10"),
    )
    if with_rates:
        # 1 EUR = 0.90 USD is the pricing page's first worked example.
        store_rates({"USD": "0.90", "CNY": "7.7748"})
    mark_catalog_changed()
    return PageCatalogue(eur_model, usd_model, cny_model)
