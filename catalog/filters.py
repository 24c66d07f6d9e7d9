"""The catalogue filters, shared by the model browser (/models) and GET /api/v1/models.

One parser and one matcher serve both, so a browser URL and an API query with the same
parameters list the same models. Parameters (all optional; an empty value means "not set", as
an HTML form submits its empty fields):

    provider     provider id; repeatable or comma-separated (any of them)
    region       region code; repeatable or comma-separated (any of them)
    capability   tool_use, vision, structured_output, streaming; repeatable or comma-separated
                 (the model must have all of them)
    min_context  smallest acceptable context window, in tokens
    eco_band     accurate, medium, gross; repeatable or comma-separated (any of them)
    min_price    EUR per 1K prompt tokens, platform fee included (the API's
    max_price    ``pricing_eur_per_1k.prompt``), inclusive bounds

provider, region and the price range are matched on one offering together: "served by
scaleway in eu-west for at most 0.0002" needs a single offering that is all three. An offering
without a EUR price (no current FX rate) never matches a price bound. Unknown parameters are
ignored (the API receives others, e.g. from SDKs); a bad value raises ``FilterError``.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from catalog.models import AccuracyBand
from catalog.snapshot import ModelView, OfferingView

CAPABILITIES = ("tool_use", "vision", "structured_output", "streaming")
ECO_BANDS = tuple(AccuracyBand.values)
FILTER_PARAMS = (
    "provider",
    "region",
    "capability",
    "min_context",
    "eco_band",
    "min_price",
    "max_price",
)
# Ids and region codes are slugs; anything else is a typo or an injection attempt, and deserves
# a message rather than an empty list.
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MAX_CONTEXT = 100_000_000
_MAX_PRICE = Decimal(1000)
_PER_1K = Decimal(1000)


class FilterError(ValueError):
    """A filter parameter has a value that cannot be used; ``param`` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


@dataclass(frozen=True)
class ModelFilters:
    providers: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()
    capabilities: frozenset[str] = frozenset()
    eco_bands: frozenset[str] = frozenset()
    min_context: int | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None

    @property
    def active(self) -> bool:
        return self != ModelFilters()


def split_values(params: Mapping[str, str], name: str) -> list[str]:
    """Every non-empty value of ``name``: repeated parameters and comma lists alike."""
    getlist = getattr(params, "getlist", None)
    raw = getlist(name) if getlist is not None else [params.get(name, "")]
    out: list[str] = []
    for item in raw:
        out.extend(part.strip() for part in str(item).split(",") if part.strip())
    return out


def _single(params: Mapping[str, str], name: str) -> str:
    values = split_values(params, name)
    if len(values) > 1:
        raise FilterError(name, f"'{name}' takes a single value, got {len(values)}.")
    return values[0] if values else ""


def _slugs(params: Mapping[str, str], name: str) -> frozenset[str]:
    values = split_values(params, name)
    for value in values:
        if not _SLUG.match(value):
            raise FilterError(name, f"'{value}' is not a valid {name} id.")
    return frozenset(values)


def _choices(params: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> frozenset[str]:
    values = split_values(params, name)
    for value in values:
        if value not in allowed:
            raise FilterError(
                name, f"Unknown {name} '{value}'; expected one of: {', '.join(allowed)}."
            )
    return frozenset(values)


def _price(params: Mapping[str, str], name: str) -> Decimal | None:
    raw = _single(params, name)
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise FilterError(name, f"'{name}' must be a number (EUR per 1K tokens).") from None
    if not value.is_finite() or value < 0 or value > _MAX_PRICE:
        raise FilterError(name, f"'{name}' must be between 0 and {_MAX_PRICE} EUR per 1K tokens.")
    return value


def parse_filters(params: Mapping[str, str]) -> ModelFilters:
    """Read and validate the filter parameters; raises FilterError on the first bad one."""
    raw_context = _single(params, "min_context")
    min_context = None
    if raw_context:
        if not raw_context.isdigit() or not 0 < int(raw_context) <= _MAX_CONTEXT:
            raise FilterError(
                "min_context", "'min_context' must be a whole number of tokens, at least 1."
            )
        min_context = int(raw_context)
    min_price, max_price = _price(params, "min_price"), _price(params, "max_price")
    if min_price is not None and max_price is not None and min_price > max_price:
        raise FilterError("min_price", "'min_price' is greater than 'max_price'.")
    return ModelFilters(
        providers=_slugs(params, "provider"),
        regions=_slugs(params, "region"),
        capabilities=_choices(params, "capability", CAPABILITIES),
        eco_bands=_choices(params, "eco_band", ECO_BANDS),
        min_context=min_context,
        min_price=min_price,
        max_price=max_price,
    )


def prompt_price_per_1k(model: ModelView, offering: OfferingView) -> Decimal | None:
    """What a prompt token costs per 1K on this offering, platform fee included (EUR)."""
    if offering.prompt_eur is None:
        return None
    return (offering.prompt_eur + model.platform_fee_eur) / _PER_1K


def _offering_matches(model: ModelView, o: OfferingView, f: ModelFilters) -> bool:
    if f.providers and o.provider_id not in f.providers:
        return False
    if f.regions and o.region not in f.regions:
        return False
    if f.min_price is None and f.max_price is None:
        return True
    price = prompt_price_per_1k(model, o)
    if price is None:
        return False
    if f.min_price is not None and price < f.min_price:
        return False
    return f.max_price is None or price <= f.max_price


def model_matches(model: ModelView, f: ModelFilters) -> bool:
    if f.min_context is not None and model.context_window < f.min_context:
        return False
    if f.eco_bands and model.params_accuracy not in f.eco_bands:
        return False
    if not f.capabilities <= set(model.capabilities):
        return False
    needs_offering = f.providers or f.regions or f.min_price is not None or f.max_price is not None
    if not needs_offering:
        return True
    return any(_offering_matches(model, o, f) for o in model.offerings)


def filter_models(models: Iterable[ModelView], params: Mapping[str, str]) -> list[ModelView]:
    """The models matching the filter parameters, in their given order.

    Raises FilterError (with the offending parameter) when a value cannot be used; callers turn
    it into a 400 (the API's error shape, or the browser's error page).
    """
    f = parse_filters(params)
    return [m for m in models if model_matches(m, f)]
