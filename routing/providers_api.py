"""GET /api/v1/providers: every configured provider, routable or not, with its live health."""

from django.http import HttpRequest, HttpResponse, JsonResponse

from catalog.models import Provider, ProviderStatus
from catalog.snapshot import get_snapshot
from routing.errors import ApiError
from routing.health import read_health


def provider_to_api(provider: Provider, regions: list[str], health: dict) -> dict:
    handling = provider.data_handling or {}
    return {
        "id": provider.id,
        "object": "provider",
        "name": provider.name,
        # "unavailable" is the operator's soft-disable: listed here, never routed to.
        "status": provider.status,
        "routable": provider.status != ProviderStatus.UNAVAILABLE,
        "wire_format": provider.wire_format,
        "billing_currency": provider.billing_currency,
        "is_demo": provider.is_demo,
        "data_handling": {
            "retention": handling.get("retention"),
            "training_use": handling.get("training_use"),
            "launch_status": handling.get("launch_status"),
            "notes": handling.get("notes"),
        },
        "regions": [{"region": r, "health": health[(provider.id, r)].as_dict()} for r in regions],
    }


def list_providers(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return ApiError(405, "method_not_allowed", "Use GET, HEAD on this endpoint.").response(
            {"Allow": "GET, HEAD"}
        )
    snapshot = get_snapshot()
    regions: dict[str, set[str]] = {pid: set() for pid in snapshot.providers}
    for model in snapshot.models.values():
        for o in model.offerings:
            regions.setdefault(o.provider_id, set()).add(o.region)
    slots = [(pid, r) for pid, rs in regions.items() for r in rs]
    health = read_health(slots)
    data = [
        provider_to_api(p, sorted(regions.get(pid, ())), health)
        for pid, p in sorted(snapshot.providers.items())
    ]
    return JsonResponse({"object": "list", "data": data})
