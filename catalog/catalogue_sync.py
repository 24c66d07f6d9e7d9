"""Load a catalogue file into the database: providers, models and offerings.

The file is the operator's script for the catalogue. Syncing it is an idempotent upsert in one
transaction: running it twice leaves the same rows, and a file with one bad entry changes
nothing. Rows that are no longer in the file are left alone (an operator disables them in the
admin) so that a partial file can never silently delete an offering that generations refer to.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from django.db import transaction
from django.db.models import Model as DjangoModel

from catalog import price_changes
from catalog.catalogue import read_catalogue, validate_catalogue
from catalog.models import Model, Offering, Provider
from catalog.snapshot import mark_catalog_changed


@dataclass
class SyncReport:
    path: str = ""
    created: dict[str, int] = field(
        default_factory=lambda: {"provider": 0, "model": 0, "offering": 0}
    )
    updated: dict[str, int] = field(
        default_factory=lambda: {"provider": 0, "model": 0, "offering": 0}
    )
    unchanged: dict[str, int] = field(
        default_factory=lambda: {"provider": 0, "model": 0, "offering": 0}
    )
    # Price changes held for an operator's approval, and platform fee changes scheduled ahead.
    prices_pending: int = 0
    fees_scheduled: int = 0

    def count(self, kind: str, outcome: str) -> None:
        getattr(self, outcome)[kind] += 1

    def summary(self) -> str:
        lines = [f"Catalogue synced from {self.path}"]
        for kind in ("provider", "model", "offering"):
            lines.append(
                f"  {kind}s: {self.created[kind]} created, {self.updated[kind]} updated, "
                f"{self.unchanged[kind]} unchanged"
            )
        if self.prices_pending:
            lines.append(f"  {self.prices_pending} price change(s) wait for approval in the admin")
        if self.fees_scheduled:
            lines.append(f"  {self.fees_scheduled} platform fee change(s) scheduled")
        return "\n".join(lines)


# --- writing --------------------------------------------------------------------------------


_Row = TypeVar("_Row", bound=DjangoModel)


def _upsert(model_cls: type[_Row], pk: dict[str, Any], values: dict[str, Any]) -> tuple[_Row, str]:
    # _default_manager: the catalogue models' only manager, ``objects``.
    obj = model_cls._default_manager.select_for_update().filter(**pk).first()
    if obj is None:
        return model_cls._default_manager.create(**pk, **values), "created"
    changed = [k for k, v in values.items() if getattr(obj, k) != v]
    if not changed:
        return obj, "unchanged"
    for key in changed:
        setattr(obj, key, values[key])
    obj.save(update_fields=[*changed, "updated_at"])
    return obj, "updated"


def sync_catalogue(path: Path | str, *, approve_prices: bool = False) -> SyncReport:
    """Upsert the providers, models and offerings of a catalogue file, all or nothing.

    New offerings take their prices at once. A price change on an existing offering goes through
    ``catalog.price_changes.propose_price`` (bounds, history, approval above the threshold) unless
    ``approve_prices`` says the operator already approved the file. A platform fee increase is
    scheduled ahead, never applied on the spot.
    """
    data = read_catalogue(path)
    providers, models = validate_catalogue(data)
    report = SyncReport(path=str(path))
    source = f"file:{Path(path).name}"
    with transaction.atomic():
        for p in providers:
            _, outcome = _upsert(Provider, {"id": p["id"]}, p["values"])
            report.count("provider", outcome)
        for m in models:
            model, outcome = _upsert(Model, {"id": m["id"]}, m["values"])
            if outcome == "created":
                model.platform_fee_per_1m = m["fee"]
                model.save(update_fields=["platform_fee_per_1m"])
            elif model.platform_fee_per_1m != m["fee"]:
                if price_changes.propose_platform_fee(model=model, new_fee=m["fee"], source=source):
                    report.fees_scheduled += 1
                if outcome == "unchanged":
                    outcome = "updated"
            report.count("model", outcome)
            for o in m["offerings"]:
                outcome = _sync_offering(model, o, source, approve_prices, report)
                report.count("offering", outcome)
    mark_catalog_changed()
    return report


def _sync_offering(
    model: Model, o: dict[str, Any], source: str, approve_prices: bool, report: SyncReport
) -> str:
    values = {"upstream_model": o["upstream_model"], "enabled": o["enabled"]}
    offering = (
        Offering.objects.select_for_update()
        .filter(model=model, provider_id=o["provider"], region=o["region"])
        .first()
    )
    if offering is None:
        offering = Offering.objects.create(
            model=model, provider_id=o["provider"], region=o["region"], **values, **o["prices"]
        )
        price_changes.record_initial_price(offering=offering, source=source)
        return "created"
    changed = [k for k, v in values.items() if getattr(offering, k) != v]
    # "enabled" is also the operator's soft-disable switch: a file can disable an offering
    # (enabled: false) but never re-enables one an operator turned off in the admin.
    if "enabled" in changed and o["enabled"]:
        changed.remove("enabled")
    for key in changed:
        setattr(offering, key, values[key])
    if changed:
        offering.save(update_fields=[*changed, "updated_at"])
    outcome = price_changes.propose_price(
        offering=offering, source=source, auto_approve=approve_prices, **o["prices"]
    )
    if outcome == price_changes.ProposalOutcome.PENDING:
        report.prices_pending += 1
    if changed or outcome == price_changes.ProposalOutcome.APPLIED:
        return "updated"
    return "unchanged"
