"""The public pages: landing page, model browser, model card, provider page.

Server-rendered from the in-memory catalogue snapshot, the same data GET /api/v1/models serves;
the browser's filters are ``catalog.filters``, the API's own.
"""

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.views.decorators.http import require_safe

from catalog.filters import (
    CAPABILITIES,
    ECO_BANDS,
    FILTER_PARAMS,
    FilterError,
    filter_models,
    split_values,
)
from catalog.pages import (
    build_model_rows,
    build_offering_rows,
    current_eco_context,
    format_published,
    is_china_route,
    summarize_eco,
)
from catalog.snapshot import get_snapshot


def canonical_query(params: QueryDict) -> list[tuple[str, str]]:
    """The filter parameters without empty values, comma lists split, in a stable order."""
    return [(name, value) for name in FILTER_PARAMS for value in split_values(params, name)]


def _without(query: list[tuple[str, str]], pair: tuple[str, str]) -> str:
    rest = [p for p in query if p != pair]
    return "?" + urlencode(rest) if rest else ""


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    snapshot = get_snapshot()
    return render(
        request,
        "catalog/home.html",
        {"model_count": len(snapshot.models), "provider_count": len(snapshot.providers)},
    )


@require_safe
def model_list(request: HttpRequest) -> HttpResponse:
    query = canonical_query(request.GET)
    # A submitted form carries its empty fields; send the browser to the clean, shareable URL
    # (the one the API takes as is).
    if any(v == "" for name in FILTER_PARAMS for v in request.GET.getlist(name)):
        return HttpResponseRedirect(request.path + ("?" + urlencode(query) if query else ""))
    snapshot = get_snapshot()
    error, status, models = None, 200, []
    try:
        models = filter_models(snapshot.models.values(), request.GET)
    except FilterError as err:
        error, status = err, 400
    selected = {name: set(split_values(request.GET, name)) for name in FILTER_PARAMS}
    regions = sorted({o.region for m in snapshot.models.values() for o in m.offerings})
    context = {
        "rows": build_model_rows(models),
        "total": len(snapshot.models),
        "error": error,
        "providers": sorted(snapshot.providers.values(), key=lambda p: p.name.lower()),
        "regions": regions,
        "capabilities": CAPABILITIES,
        "eco_bands": ECO_BANDS,
        "selected": selected,
        "min_context": request.GET.get("min_context", ""),
        "min_price": request.GET.get("min_price", ""),
        "max_price": request.GET.get("max_price", ""),
        "active": [(name, value, _without(query, (name, value))) for name, value in query],
        "query_string": urlencode(query),
    }
    return render(request, "catalog/model_list.html", context, status=status)


@require_safe
def model_detail(request: HttpRequest, model_id: str) -> HttpResponse:
    model = get_snapshot().model(model_id)
    if model is None:
        return render(
            request, "catalog/not_found.html", {"what": "model", "id": model_id}, status=404
        )
    eco = current_eco_context()
    context = {
        "model": model,
        "offerings": build_offering_rows([(model, o) for o in model.offerings], eco),
        "eco": summarize_eco(model, eco),
        "fee": format_published(model.platform_fee_eur) if model.platform_fee_eur else "",
    }
    return render(request, "catalog/model_detail.html", context)


@require_safe
def provider_detail(request: HttpRequest, provider_id: str) -> HttpResponse:
    snapshot = get_snapshot()
    provider = snapshot.providers.get(provider_id)
    if provider is None:
        return render(
            request, "catalog/not_found.html", {"what": "provider", "id": provider_id}, status=404
        )
    pairs = [
        (m, o)
        for m in snapshot.models.values()
        for o in m.offerings
        if o.provider_id == provider.id
    ]
    regions = sorted({o.region for _, o in pairs})
    context = {
        "provider": provider,
        "regions": regions,
        "offerings": build_offering_rows(pairs, current_eco_context()),
        "routable": sum(1 for _, o in pairs if o.usable),
        "china_route": is_china_route(provider, regions),
        "handling": provider.data_handling or {},
    }
    return render(request, "catalog/provider_detail.html", context)
