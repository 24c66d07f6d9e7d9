"""The eco estimate for a served request (wired to the eco app's methodology)."""

from billing.costs import Usage
from catalog.snapshot import ModelView, OfferingView


def estimate(
    model: ModelView, offering: OfferingView, usage: Usage, latency_ms: int | None
) -> dict | None:
    """Fields for the generation record plus the response's ``eco`` block under "block"."""
    return None
