"""Offering prices and platform fees: validation, history, approval and the fee schedule.

Every applied price is a ``PriceChange`` row with its effective time, so the history of an
offering can be read back; generations keep the price they were charged at on their own row.
A change beyond ``LOWROUTER_PRICE_APPROVAL_PERCENT`` on any component is held for an operator
instead of applied: a provider's price-list typo must not reach customers' bills.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
from django.apps import apps
from django.conf import settings
from django.core.mail import send_mass_mail
from django.db import models, transaction
from django.utils import timezone

from catalog.catalogue import MAX_PRICE_PER_1M, CatalogueError, parse_decimal
from catalog.models import (
    FeeChangeStatus,
    Model,
    Offering,
    PlatformFeeChange,
    PriceChange,
    PriceChangeStatus,
    Provider,
)
from catalog.snapshot import mark_catalog_changed

log = logging.getLogger(__name__)

PRICE_FIELDS = ("prompt_price", "completion_price", "cached_prompt_price")


class ProposalOutcome(models.TextChoices):
    UNCHANGED = "unchanged"
    APPLIED = "applied"
    PENDING = "pending"


def _relative_change(old: Decimal | None, new: Decimal | None) -> Decimal:
    """Largest relative move of one component, in percent (a price appearing from 0 is huge)."""
    if old == new:
        return Decimal(0)
    if old is None or new is None or old == 0:
        return Decimal("Infinity")
    return abs(new - old) / old * 100


def _current_prices(offering: Offering) -> dict[str, Decimal | None]:
    return {name: getattr(offering, name) for name in PRICE_FIELDS}


def _apply(offering: Offering, change: PriceChange, now: Any) -> None:
    for name in PRICE_FIELDS:
        setattr(offering, name, getattr(change, name))
    offering.save(update_fields=[*PRICE_FIELDS, "updated_at"])
    change.status = PriceChangeStatus.APPLIED
    change.effective_at = now


def record_initial_price(*, offering: Offering, source: str) -> PriceChange:
    """The first history row of a new offering: its prices as created."""
    now = timezone.now()
    return PriceChange.objects.create(
        offering=offering,
        status=PriceChangeStatus.APPLIED,
        source=source,
        effective_at=now,
        created_at=now,
        **_current_prices(offering),
    )


def record_admin_price(*, offering: Offering, before: Offering, by: str) -> PriceChange:
    """History row for a price an operator typed in the admin (their edit is the approval)."""
    now = timezone.now()
    return PriceChange.objects.create(
        offering=offering,
        status=PriceChangeStatus.APPLIED,
        source=f"admin:{by}",
        decided_by=by,
        effective_at=now,
        created_at=now,
        old_prompt_price=before.prompt_price,
        old_completion_price=before.completion_price,
        old_cached_prompt_price=before.cached_prompt_price,
        **_current_prices(offering),
    )


def propose_price(
    *,
    offering: Offering,
    prompt_price: Decimal,
    completion_price: Decimal,
    cached_prompt_price: Decimal | None,
    source: str,
    auto_approve: bool = False,
) -> ProposalOutcome:
    """Apply a new price, or hold it for approval when it moves more than the threshold.

    The caller has validated units and bounds. Call inside a transaction.
    """
    new = {
        "prompt_price": prompt_price,
        "completion_price": completion_price,
        "cached_prompt_price": cached_prompt_price,
    }
    old = _current_prices(offering)
    if old == new:
        return ProposalOutcome.UNCHANGED
    pending = offering.price_changes.filter(status=PriceChangeStatus.PENDING)
    if any(all(getattr(p, k) == v for k, v in new.items()) for p in pending):
        # The same proposal as yesterday's: it still waits, do not queue it twice.
        return ProposalOutcome.PENDING
    threshold = Decimal(str(settings.LOWROUTER_PRICE_APPROVAL_PERCENT))
    moves = {k: _relative_change(old[k], new[k]) for k in PRICE_FIELDS}
    biggest = max(moves, key=lambda k: moves[k])
    now = timezone.now()
    # A newer proposal replaces any older one still waiting: only the latest is decided on.
    pending.update(status=PriceChangeStatus.SUPERSEDED)
    change = PriceChange(
        offering=offering,
        source=source,
        created_at=now,
        old_prompt_price=old["prompt_price"],
        old_completion_price=old["completion_price"],
        old_cached_prompt_price=old["cached_prompt_price"],
        **new,
    )
    if moves[biggest] > threshold and not auto_approve:
        change.status = PriceChangeStatus.PENDING
        move = "new" if moves[biggest].is_infinite() else f"{moves[biggest]:.1f}%"
        change.reason = f"{biggest} moved {move}, above the {threshold}% approval threshold"
        change.save()
        log.warning("price change held for approval: %s (%s)", offering, change.reason)
        return ProposalOutcome.PENDING
    _apply(offering, change, now)
    change.decided_by = "auto" if not auto_approve else "operator (file approved)"
    change.save()
    return ProposalOutcome.APPLIED


def approve_price_change(*, change_id: int, by: str) -> bool:
    """Apply a pending change; False when it is no longer pending (decided or superseded)."""
    with transaction.atomic():
        change = PriceChange.objects.select_for_update().filter(pk=change_id).first()
        if change is None or change.status != PriceChangeStatus.PENDING:
            return False
        offering = Offering.objects.select_for_update().get(pk=change.offering_id)
        _apply(offering, change, timezone.now())
        change.decided_by = by
        change.save()
    mark_catalog_changed()
    return True


def reject_price_change(*, change_id: int, by: str) -> bool:
    updated = PriceChange.objects.filter(pk=change_id, status=PriceChangeStatus.PENDING).update(
        status=PriceChangeStatus.REJECTED, decided_by=by
    )
    return updated == 1


def price_history(offering: Offering) -> list[PriceChange]:
    return list(
        offering.price_changes.filter(status=PriceChangeStatus.APPLIED).order_by("effective_at")
    )


# --- platform fees --------------------------------------------------------------------------


def propose_platform_fee(*, model: Model, new_fee: Decimal, source: str) -> bool:
    """Change a model's platform fee; returns True when an increase was scheduled ahead.

    A decrease only ever lowers customers' bills, so it applies at once (and is recorded). An
    increase is the material change the docs promise notice for: it is scheduled at least
    ``LOWROUTER_FEE_NOTICE_DAYS`` ahead and announced to every account that used the model.
    """
    now = timezone.now()
    old_fee = model.platform_fee_per_1m
    if new_fee == old_fee:
        return False
    scheduled = model.fee_changes.filter(status=FeeChangeStatus.SCHEDULED)
    if new_fee < old_fee:
        scheduled.update(status=FeeChangeStatus.CANCELLED)
        model.platform_fee_per_1m = new_fee
        model.save(update_fields=["platform_fee_per_1m", "updated_at"])
        PlatformFeeChange.objects.create(
            model=model,
            old_fee=old_fee,
            new_fee=new_fee,
            effective_at=now,
            status=FeeChangeStatus.APPLIED,
            source=source,
        )
        return False
    if scheduled.filter(new_fee=new_fee).exists():
        return False
    scheduled.update(status=FeeChangeStatus.CANCELLED)
    change = PlatformFeeChange.objects.create(
        model=model,
        old_fee=old_fee,
        new_fee=new_fee,
        effective_at=now + timedelta(days=settings.LOWROUTER_FEE_NOTICE_DAYS),
        status=FeeChangeStatus.SCHEDULED,
        source=source,
    )
    transaction.on_commit(lambda: announce_fee_change(change_id=change.pk))
    return True


def schedule_platform_fee(
    *, model: Model, new_fee: Decimal, effective_at: Any, source: str
) -> PlatformFeeChange:
    """An operator's explicit schedule (the admin); refuses less than the notice period."""
    earliest = timezone.now() + timedelta(days=settings.LOWROUTER_FEE_NOTICE_DAYS)
    if new_fee > model.platform_fee_per_1m and effective_at < earliest - timedelta(minutes=5):
        raise ValueError(
            f"a fee increase must take effect at least {settings.LOWROUTER_FEE_NOTICE_DAYS} days "
            "ahead"
        )
    change = PlatformFeeChange.objects.create(
        model=model,
        old_fee=model.platform_fee_per_1m,
        new_fee=new_fee,
        effective_at=effective_at,
        status=FeeChangeStatus.SCHEDULED,
        source=source,
    )
    transaction.on_commit(lambda: announce_fee_change(change_id=change.pk))
    return change


def accounts_that_used(model_id: str) -> list[str]:
    # Looked up through the app registry: billing sits above catalog in the import graph, and
    # this is the one place the catalogue needs to know who used a model.
    generation = apps.get_model("billing", "Generation")
    return sorted(
        set(
            generation.objects.filter(resolved_model=model_id)
            .exclude(account__email="")
            # Customers who turned price and fee notices off in their settings.
            .exclude(account__preferences__price_notices=False)
            .values_list("account__email", flat=True)
            .distinct()
        )
    )


def announce_fee_change(*, change_id: int) -> int:
    """Email the accounts that used the model about a scheduled fee change (once)."""
    change = PlatformFeeChange.objects.select_related("model").filter(pk=change_id).first()
    if change is None or change.announced_at is not None:
        return 0
    recipients = accounts_that_used(change.model_id)
    subject = f"LowRouter: platform fee change for {change.model_id}"
    body = (
        f"The platform fee of {change.model.display_name} ({change.model_id}) changes from "
        f"EUR {change.old_fee} to EUR {change.new_fee} per 1M tokens on "
        f"{change.effective_at:%Y-%m-%d %H:%M} UTC.\n\n"
        "You receive this because your account used this model. Prices shown on the model "
        "browser include the platform fee; requests made before that date are not affected.\n"
    )
    messages = [(subject, body, settings.DEFAULT_FROM_EMAIL, [email]) for email in recipients]
    if messages:
        send_mass_mail(messages, fail_silently=False)
    PlatformFeeChange.objects.filter(pk=change.pk).update(
        announced_at=timezone.now(), announced_to=len(recipients)
    )
    return len(recipients)


def apply_due_fee_changes() -> int:
    """Apply every scheduled fee change whose time has come (the daily run calls it)."""
    now = timezone.now()
    applied = 0
    with transaction.atomic():
        due = PlatformFeeChange.objects.select_for_update().filter(
            status=FeeChangeStatus.SCHEDULED, effective_at__lte=now
        )
        for change in due.select_related("model"):
            Model.objects.filter(pk=change.model_id).update(
                platform_fee_per_1m=change.new_fee, updated_at=now
            )
            change.status = FeeChangeStatus.APPLIED
            change.save(update_fields=["status"])
            applied += 1
    if applied:
        mark_catalog_changed()
    return applied


# --- remote JSON price lists ----------------------------------------------------------------


@dataclass
class PriceListReport:
    provider: str
    applied: int = 0
    pending: int = 0
    unchanged: int = 0
    unknown_models: list[str] = field(default_factory=list)
    error: str = ""


def parse_price_list(data: Any, provider: Provider) -> list[dict[str, Any]]:
    """Validate a remote price list (format: docs/pricing-and-fx.md) into price entries."""
    where = f"price list of '{provider.id}'"
    if not isinstance(data, dict):
        raise CatalogueError(f"{where}: the document must be a JSON object")
    if data.get("provider") != provider.id:
        raise CatalogueError(f"{where}: field 'provider' is {data.get('provider')!r}")
    if data.get("currency") != provider.billing_currency:
        raise CatalogueError(
            f"{where}: field 'currency' is {data.get('currency')!r}, but the provider bills in "
            f"{provider.billing_currency}"
        )
    if data.get("unit") != "per_1m_tokens":
        raise CatalogueError(f"{where}: field 'unit' must be 'per_1m_tokens'")
    entries = data.get("prices")
    if not isinstance(entries, list):
        raise CatalogueError(f"{where}: field 'prices' must be a list")
    parsed = []
    for i, entry in enumerate(entries):
        at = f"{where} prices[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("upstream_model"), str):
            raise CatalogueError(f"{at}: field 'upstream_model' is required")
        region = entry.get("region")
        if region is not None and not isinstance(region, str):
            raise CatalogueError(f"{at}: field 'region' must be a string")
        for key in ("prompt", "completion"):
            if key not in entry:
                raise CatalogueError(f"{at}: field '{key}' is required")
        cached = entry.get("cached_prompt")
        parsed.append(
            {
                "upstream_model": entry["upstream_model"],
                "region": region,
                "prompt_price": parse_decimal(
                    entry["prompt"], at, "prompt", maximum=MAX_PRICE_PER_1M
                ),
                "completion_price": parse_decimal(
                    entry["completion"], at, "completion", maximum=MAX_PRICE_PER_1M
                ),
                "cached_prompt_price": None
                if cached is None
                else parse_decimal(cached, at, "cached_prompt", maximum=MAX_PRICE_PER_1M),
            }
        )
    return parsed


def ingest_price_list(provider: Provider, *, client: httpx.Client | None = None) -> PriceListReport:
    report = PriceListReport(provider=provider.id)
    url = provider.price_list_url
    try:
        with client or httpx.Client(timeout=settings.LOWROUTER_FX_FETCH_TIMEOUT) as http:
            response = http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            entries = parse_price_list(response.json(), provider)
    except (httpx.HTTPError, ValueError) as exc:
        # ValueError covers malformed JSON and CatalogueError: the list is refused whole.
        report.error = f"{type(exc).__name__}: {exc}"
        log.error("price list of %s refused (%s): %s", provider.id, url, report.error)
        return report
    with transaction.atomic():
        for entry in entries:
            offerings = Offering.objects.select_for_update().filter(
                provider=provider, upstream_model=entry["upstream_model"]
            )
            if entry["region"]:
                offerings = offerings.filter(region=entry["region"])
            found = list(offerings)
            if not found:
                report.unknown_models.append(entry["upstream_model"])
                continue
            for offering in found:
                outcome = propose_price(
                    offering=offering,
                    prompt_price=entry["prompt_price"],
                    completion_price=entry["completion_price"],
                    cached_prompt_price=entry["cached_prompt_price"],
                    source=f"url:{url}"[:300],
                )
                setattr(report, str(outcome), getattr(report, str(outcome)) + 1)
    if report.applied:
        mark_catalog_changed()
    return report


def ingest_price_lists() -> list[PriceListReport]:
    """Fetch every configured remote price list; one bad list does not stop the others."""
    return [ingest_price_list(p) for p in Provider.objects.exclude(price_list_url="")]
