"""Celery tasks of the catalogue: thin wrappers around the functions that do the work."""

import logging

from celery import shared_task
from django.conf import settings

from catalog import price_changes
from catalog.catalogue import CatalogueError
from catalog.catalogue_sync import sync_catalogue
from catalog.fx_ingest import ingest_fx, refresh_freshness

log = logging.getLogger(__name__)


@shared_task(name="catalog.daily_ingest")
def daily_ingest() -> dict[str, object]:
    """FX rates, then the catalogue file and the remote price lists, then due fee changes.

    Each step runs even when an earlier one failed: a dead ECB feed must not stop a price update
    of an EUR provider, and the FX step raises its own alert.
    """
    result: dict[str, object] = {}
    fx_result = ingest_fx()
    result["fx_ok"] = fx_result.ok
    result["fx_stale"] = fx_result.stale_currencies
    try:
        report = sync_catalogue(settings.LOWROUTER_CATALOGUE_FILE)
        result["prices_pending"] = report.prices_pending
    except CatalogueError as exc:
        log.error("daily catalogue sync refused the file: %s", exc)
        result["catalogue_error"] = str(exc)
    result["price_lists"] = [
        {"provider": r.provider, "applied": r.applied, "pending": r.pending, "error": r.error}
        for r in price_changes.ingest_price_lists()
    ]
    result["fees_applied"] = price_changes.apply_due_fee_changes()
    return result


@shared_task(name="catalog.fx_ingest")
def fx_ingest() -> bool:
    return ingest_fx().ok


@shared_task(name="catalog.fx_freshness_check")
def fx_freshness_check() -> list[str]:
    """Reload every snapshot when a rate ages out (or back in) between two ingests."""
    return refresh_freshness()
