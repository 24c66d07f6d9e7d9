"""Console fixtures: accounts whose usage is written by the real settlement path."""

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.test import Client

from accounts.models import User
from billing.ids import new_generation_id
from billing.models import GenerationStatus
from billing.onboarding import create_account
from billing.spending import Settlement, reserve_credits, settle_generation
from catalog.catalogue_sync import sync_catalogue
from catalog.snapshot import reset_snapshot
from keys.actions import create_key
from keys.models import ApiKey

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@dataclass
class Customer:
    user: User
    key: ApiKey
    client: Client

    def settle(
        self,
        *,
        model: str = "demo/echo-small",
        provider: str = "demo",
        region: str = "eu-west",
        prompt: int = 100,
        completion: int = 50,
        cost_micros: int = 4000,
        at: datetime = NOW,
        energy_wh: float | None = 0.5,
        carbon_g: float | None = 0.1,
        accuracy: str = "medium",
        status: str = GenerationStatus.OK,
        key: ApiKey | None = None,
        latency_ms: int = 120,
    ) -> str:
        """One request, reserved and settled as the gateway does it; returns its id."""
        key = key or self.key
        hold = reserve_credits(
            account_id=self.user.pk,
            key_id=key.pk,
            key_name=key.name,
            daily_limit=None,
            monthly_limit=None,
            amount_micros=cost_micros,
            now=at,
        )
        eco = {}
        if carbon_g is not None:
            eco = {
                "energy_wh": energy_wh,
                "carbon_g": carbon_g,
                "carbon_per_1k_tokens_g": carbon_g * 1000 / (prompt + completion),
                "accuracy": accuracy,
                "methodology_version": "v0.4-2026-01",
                "inputs": {"provider": provider, "region": region},
            }
        outcome = Settlement(
            generation_id=new_generation_id(),
            requested_model=model,
            resolved_model=model,
            status=status,
            provider=provider,
            region=region,
            prompt_tokens=prompt,
            completion_tokens=completion,
            latency_ms=latency_ms,
            cost_micros=cost_micros,
            prompt_price_eur=Decimal("10"),
            completion_price_eur=Decimal("30"),
            platform_fee_eur=Decimal("0.5"),
            created_at=at,
            eco=eco,
            routing_trace={
                "winner_reason": "cheapest",
                "candidates": [{"model": model, "provider": provider, "region": region}],
                "removed": [],
                "attempts": [{"provider": provider, "region": region, "outcome": "ok"}],
                "failover": {"other_regions": True, "why": "allowed"},
            },
        )
        settle_generation(hold=hold, outcome=outcome)
        return str(outcome.generation_id)


def make_customer(email: str, credits: str = "100") -> Customer:
    user = create_account(
        email=email, password="a long enough password", credits=Decimal(credits), verified=True
    )
    key, _ = create_key(account=user, name="main")
    client = Client()
    client.force_login(user)
    return Customer(user, key, client)


@pytest.fixture
def customer(db: None, settings) -> Customer:
    sync_catalogue(Path(__file__).parent / "catalogue.yaml")
    reset_snapshot()
    return make_customer("ada@example.com")


@pytest.fixture
def frozen_today(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """The console reads "today" from django.utils.timezone.now: pinned to NOW."""
    monkeypatch.setattr("console.views.timezone.now", lambda: NOW)
    return NOW
