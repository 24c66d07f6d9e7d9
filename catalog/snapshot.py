"""An in-memory, immutable view of the catalogue for the request path.

The gateway never queries the catalogue per request. Each process holds one snapshot and
reloads it when the catalogue's version (a counter in the shared cache, bumped by every
catalogue write through ``mark_catalog_changed``) moves; the version is checked at most once per
``CHECK_INTERVAL`` seconds, so a change is seen by every process within that interval.
"""

import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from catalog import fx
from catalog.credentials import resolve_credential
from catalog.models import Model, Offering, OutputBoundField, Provider, ProviderStatus
from eco.estimate import CONTEXT_VERSION_CACHE_KEY, EcoContext, load_eco_context
from lowrouter.asyncdb import STALE_GRACE_S, refresh_in_background, run_db
from lowrouter.cache import shared_cache as cache

VERSION_CACHE_KEY = "catalog:version"
CHECK_INTERVAL = 0.5


@dataclass(frozen=True)
class OfferingView:
    model_id: str
    provider_id: str
    provider_name: str
    region: str
    upstream_model: str
    base_url: str
    wire_format: str
    credential: str | None
    currency: str
    # EUR per 1M tokens, as debited (None while the price cannot be converted to EUR).
    prompt_eur: Decimal | None
    completion_eur: Decimal | None
    cached_prompt_eur: Decimal | None
    # Why the offering cannot be routed to right now ("" when it can).
    unavailable_reason: str
    provider_status: str
    # The one request field that carries the output-token bound upstream (OpenAI wire format).
    output_bound_field: str = OutputBoundField.MAX_TOKENS

    @property
    def usable(self) -> bool:
        return not self.unavailable_reason

    @property
    def price_sum_eur(self) -> Decimal:
        """Prompt plus completion price, what "cheapest" orders by. Only for a priced offering
        (a usable one always is: without an EUR price it is ``fx_unavailable``)."""
        assert self.prompt_eur is not None and self.completion_eur is not None
        return self.prompt_eur + self.completion_eur


@dataclass(frozen=True)
class ModelView:
    id: str
    display_name: str
    owner: str
    context_window: int
    max_output_tokens: int
    capabilities: tuple[str, ...]
    active_params_b: Decimal | None
    params_accuracy: str
    params_nominal: bool
    platform_fee_eur: Decimal
    lifecycle: str
    sunset_at: datetime | None
    replacement: str
    offerings: tuple[OfferingView, ...]

    @property
    def regions(self) -> list[str]:
        return sorted({o.region for o in self.offerings})


@dataclass(frozen=True)
class CatalogSnapshot:
    version: tuple
    models: dict[str, ModelView] = field(default_factory=dict)
    providers: dict[str, Provider] = field(default_factory=dict)
    # The eco methodologies and grid tables, loaded with the catalogue and refreshed with it.
    eco: EcoContext | None = None

    def model(self, model_id: str) -> ModelView | None:
        return self.models.get(model_id)


def _unavailable_reason(provider: Provider, offering: Offering, credential: str | None) -> str:
    if provider.status == ProviderStatus.UNAVAILABLE:
        return "provider_disabled"
    if not offering.enabled:
        return "offering_disabled"
    if provider.requires_credential and not credential:
        return "provider_not_configured"
    return ""


def load_snapshot(version: tuple = ()) -> CatalogSnapshot:
    """Read the whole catalogue (three queries) into an immutable snapshot."""
    providers = {p.id: p for p in Provider.objects.all()}
    credentials = {pid: resolve_credential(p) for pid, p in providers.items()}
    rates = fx.current_multipliers()
    by_model: dict[str, list[OfferingView]] = {}
    for o in Offering.objects.all():
        provider = providers[o.provider_id]
        eur = fx.eur_prices(o, provider.billing_currency, rates)
        reason = _unavailable_reason(provider, o, credentials[provider.id])
        if not reason and eur is None:
            reason = "fx_unavailable"
        by_model.setdefault(o.model_id, []).append(
            OfferingView(
                model_id=o.model_id,
                provider_id=provider.id,
                provider_name=provider.name,
                region=o.region,
                upstream_model=o.upstream_model,
                base_url=provider.base_url.rstrip("/"),
                wire_format=provider.wire_format,
                output_bound_field=provider.output_bound_field,
                credential=credentials[provider.id],
                currency=provider.billing_currency,
                prompt_eur=eur.prompt if eur else None,
                completion_eur=eur.completion if eur else None,
                cached_prompt_eur=eur.cached_prompt if eur else None,
                unavailable_reason=reason,
                provider_status=provider.status,
            )
        )
    models = {}
    for m in Model.objects.all():
        models[m.id] = ModelView(
            id=m.id,
            display_name=m.display_name,
            owner=m.owner,
            context_window=m.context_window,
            max_output_tokens=m.max_output_tokens,
            capabilities=tuple(m.capabilities),
            active_params_b=m.active_params_b,
            params_accuracy=m.params_accuracy,
            params_nominal=m.params_nominal,
            platform_fee_eur=m.platform_fee_per_1m,
            lifecycle=m.lifecycle,
            sunset_at=m.sunset_at,
            replacement=m.replacement,
            offerings=tuple(by_model.get(m.id, ())),
        )
    return CatalogSnapshot(
        version=version, models=models, providers=providers, eco=load_eco_context()
    )


def mark_catalog_changed() -> None:
    """Call after any catalogue write: every process reloads its snapshot within CHECK_INTERVAL."""
    try:
        cache.incr(VERSION_CACHE_KEY)
    except ValueError:
        cache.set(VERSION_CACHE_KEY, 1, timeout=None)
    _state.checked_at = 0.0


class _State:
    snapshot: CatalogSnapshot | None = None
    checked_at: float = 0.0


_state = _State()


def _current_version() -> tuple:
    """What the snapshot depends on: catalogue edits, eco edits, and the UTC date (FX rates and
    grid data age by the day). One cache round trip."""
    found = cache.get_many([VERSION_CACHE_KEY, CONTEXT_VERSION_CACHE_KEY])
    return (
        int(found.get(VERSION_CACHE_KEY) or 0),
        int(found.get(CONTEXT_VERSION_CACHE_KEY) or 0),
        timezone.now().date(),
    )


def get_snapshot() -> CatalogSnapshot:
    """The current snapshot, for synchronous callers (views of the console, commands)."""
    now = time.monotonic()
    snap = _state.snapshot
    if snap is not None and now - _state.checked_at < CHECK_INTERVAL:
        return snap
    version = _current_version()
    _state.checked_at = now
    if snap is None or snap.version != version:
        snap = load_snapshot(version)
        _state.snapshot = snap
    return snap


async def aget_snapshot() -> CatalogSnapshot:
    """The current snapshot for the event loop: no I/O at all while it is fresh, nor while it
    is being reloaded in the background just past its interval."""
    snap = _state.snapshot
    if snap is not None:
        age = time.monotonic() - _state.checked_at
        if age < CHECK_INTERVAL:
            return snap
        if age < CHECK_INTERVAL + STALE_GRACE_S:
            refresh_in_background("catalogue", get_snapshot)
            return snap
    # run_db: a dropped database connection becomes DatabaseUnavailable (503), not a 500.
    return await run_db(get_snapshot)


def reset_snapshot() -> None:
    """Forget the snapshot (tests and the catalogue sync use it)."""
    _state.snapshot = None
    _state.checked_at = 0.0
