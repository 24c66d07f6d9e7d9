"""Read the caller's routing constraints: the ``route`` object, the X-LowRouter-Region header,
and OpenRouter's ``provider`` object and ``models`` list (mapped as docs/routing.md says).

Only shape and self-contradiction are checked here; the key's and the account's limits are
applied by the router. Every problem is a 400 that names the field.
"""

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from routing.errors import ApiError, invalid_request

_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ROUTE_FIELDS = frozenset({"provider", "region", "prefer_low_carbon", "fallback"})
SORTS = {"price": "price", "latency": "latency", "throughput": "latency"}
# OpenRouter fields we accept and do not act on (documented): they must not break a request.
OPENROUTER_IGNORED = frozenset(
    {"data_collection", "require_parameters", "quantizations", "zdr", "experimental"}
)
MAX_FALLBACK_MODELS = 8


@dataclass(frozen=True)
class RequestConstraints:
    # Providers the request allows (None: any); from route.provider and provider.only/order.
    providers: frozenset[str] | None = None
    providers_source: str = ""
    ignored: frozenset[str] = frozenset()
    order: tuple[str, ...] = ()
    region: str = ""
    region_source: str = ""
    prefer_low_carbon: bool | None = None
    fallback: bool | None = None
    sort: str = ""
    # EUR per 1M tokens, each component optional.
    max_prompt: Decimal | None = None
    max_completion: Decimal | None = None
    fallback_models: tuple[str, ...] = ()

    def as_trace(self) -> dict:
        out: dict = {}
        if self.providers is not None:
            out["providers"] = sorted(self.providers)
        if self.ignored:
            out["ignore"] = sorted(self.ignored)
        if self.order:
            out["order"] = list(self.order)
        if self.region:
            out["region"] = self.region
            out["region_source"] = self.region_source
        if self.prefer_low_carbon is not None:
            out["prefer_low_carbon"] = self.prefer_low_carbon
        if self.fallback is not None:
            out["fallback"] = self.fallback
        if self.sort:
            out["sort"] = self.sort
        if self.max_prompt is not None or self.max_completion is not None:
            out["max_price_eur_per_1m"] = {
                "prompt": None if self.max_prompt is None else str(self.max_prompt),
                "completion": None if self.max_completion is None else str(self.max_completion),
            }
        if self.fallback_models:
            out["models"] = list(self.fallback_models)
        return out


def conflict(message: str, param: str) -> ApiError:
    return ApiError(400, "contradictory_route", message, param=param)


def _slug(value: object, param: str) -> str:
    if not isinstance(value, str) or not _SLUG.match(value):
        raise invalid_request(
            f"'{param}' must be an id like 'eu-west' or 'mistral' (lowercase letters, digits, "
            "'-', '_', '.').",
            param=param,
        )
    return value


def _slugs(value: object, param: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise invalid_request(f"'{param}' must be a list of provider ids.", param=param)
    return tuple(_slug(v, param) for v in value)


def _bool(value: object, param: str) -> bool:
    if not isinstance(value, bool):
        raise invalid_request(f"'{param}' must be a boolean.", param=param)
    return value


def _price(value: object, param: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise invalid_request(
            f"'{param}' must be a number (EUR per 1M tokens).", param=param
        ) from None
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        raise invalid_request(
            f"'{param}' must be a number (EUR per 1M tokens).", param=param
        ) from None
    if not price.is_finite() or price < 0:
        raise invalid_request(f"'{param}' must be a non-negative number.", param=param)
    return price


def _read_route(route: dict) -> dict:
    unknown = sorted(set(route) - ROUTE_FIELDS)
    if unknown:
        raise invalid_request(
            f"Unknown field 'route.{unknown[0]}'; 'route' accepts provider, region, "
            "prefer_low_carbon and fallback.",
            param=f"route.{unknown[0]}",
        )
    out: dict = {}
    if route.get("provider") is not None:
        out["provider"] = _slug(route["provider"], "route.provider")
    if route.get("region") is not None:
        out["region"] = _slug(route["region"], "route.region")
    if route.get("prefer_low_carbon") is not None:
        out["prefer_low_carbon"] = _bool(route["prefer_low_carbon"], "route.prefer_low_carbon")
    if route.get("fallback") is not None:
        out["fallback"] = _bool(route["fallback"], "route.fallback")
    return out


def _read_provider(obj: dict) -> dict:
    out: dict = {}
    for name in ("order", "only", "ignore"):
        if obj.get(name) is not None:
            out[name] = _slugs(obj[name], f"provider.{name}")
    if obj.get("allow_fallbacks") is not None:
        out["allow_fallbacks"] = _bool(obj["allow_fallbacks"], "provider.allow_fallbacks")
    if obj.get("sort") is not None:
        if obj["sort"] not in SORTS:
            raise invalid_request(
                "'provider.sort' must be 'price', 'latency' or 'throughput'.",
                param="provider.sort",
            )
        out["sort"] = SORTS[obj["sort"]]
    if obj.get("max_price") is not None:
        mp = obj["max_price"]
        if not isinstance(mp, dict):
            raise invalid_request(
                "'provider.max_price' must be an object with 'prompt' and/or 'completion'.",
                param="provider.max_price",
            )
        out["max_prompt"] = _price(mp.get("prompt"), "provider.max_price.prompt")
        out["max_completion"] = _price(mp.get("completion"), "provider.max_price.completion")
    return out


def _read_models(value: list, primary: str) -> tuple[str, ...]:
    if len(value) > MAX_FALLBACK_MODELS:
        raise invalid_request(
            f"'models' may list at most {MAX_FALLBACK_MODELS} models.", param="models"
        )
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip() or len(item) > 200:
            raise invalid_request("'models' must be a list of model ids.", param="models")
        if item != primary and item not in out:
            out.append(item)
    return tuple(out)


def parse_constraints(body: dict, model: str, region_header: str | None) -> RequestConstraints:
    """The request layer of the decision order, or a 400 saying which fields disagree."""
    route = _read_route(body.get("route") or {})
    prov = _read_provider(body.get("provider") or {})
    fields: dict = {}

    region = route.get("region", "")
    region_source = "route.region" if region else ""
    if region_header:
        header_region = _slug(region_header.strip(), "X-LowRouter-Region")
        if region and header_region != region:
            raise conflict(
                f"'route.region' is '{region}' but the X-LowRouter-Region header says "
                f"'{header_region}'; send one region.",
                "route.region",
            )
        region, region_source = header_region, region_source or "X-LowRouter-Region"
    fields.update(region=region, region_source=region_source)

    fallback = route.get("fallback")
    allow = prov.get("allow_fallbacks")
    if fallback is not None and allow is not None and fallback != allow:
        raise conflict(
            f"'route.fallback' is {str(fallback).lower()} but 'provider.allow_fallbacks' is "
            f"{str(allow).lower()}.",
            "route.fallback",
        )
    fields["fallback"] = fallback if fallback is not None else allow

    providers: set[str] | None = None
    sources: list[str] = []
    if "provider" in route:
        providers = {route["provider"]}
        sources.append("route.provider")
    if "only" in prov:
        only = set(prov["only"])
        if providers is not None and not providers & only:
            raise conflict(
                f"'route.provider' is '{route['provider']}' but 'provider.only' does not list it.",
                "provider.only",
            )
        providers = only if providers is None else providers & only
        sources.append("provider.only")
    order = prov.get("order", ())
    if order and allow is False:
        # OpenRouter: without fallbacks, only the providers in `order` may serve.
        listed = set(order)
        if providers is not None and not providers & listed:
            raise conflict(
                "'provider.allow_fallbacks' is false, so only 'provider.order' may serve, "
                "but it shares no provider with 'route.provider'/'provider.only'.",
                "provider.order",
            )
        providers = listed if providers is None else providers & listed
        sources.append("provider.order")
    ignored = set(prov.get("ignore", ()))
    if providers is not None and ignored and not providers - ignored:
        raise conflict(
            f"Every provider the request allows ({', '.join(sorted(providers))}) is also in "
            "'provider.ignore'.",
            "provider.ignore",
        )
    fields.update(
        providers=None if providers is None else frozenset(providers),
        providers_source="+".join(sources),
        ignored=frozenset(ignored),
        order=tuple(order),
        prefer_low_carbon=route.get("prefer_low_carbon"),
        sort=prov.get("sort", ""),
        max_prompt=prov.get("max_prompt"),
        max_completion=prov.get("max_completion"),
    )
    models = body.get("models")
    if models is not None:
        fields["fallback_models"] = _read_models(models, model)
    return RequestConstraints(**fields)
