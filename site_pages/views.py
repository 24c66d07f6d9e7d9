"""The public legal and trust pages: /privacy, /terms, /impressum, /pricing, /providers,
/status, /changelog. Anyone can read them, signed in or not."""

import time

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from catalog.snapshot import get_snapshot
from docs_site.rendering import render_markdown
from eco.models import MethodologyVersion
from site_pages.models import ChangelogEntry, Incident
from site_pages.pages import (
    LEGAL_TITLES,
    build_status_rows,
    get_pricing_context,
    render_legal_text,
)


@require_safe
def legal_page(request: HttpRequest, slug: str) -> HttpResponse:
    context = {"title": LEGAL_TITLES[slug], "html": render_legal_text(slug), "slug": slug}
    return render(request, "site_pages/legal.html", context)


@require_safe
def pricing(request: HttpRequest) -> HttpResponse:
    context = get_pricing_context(get_snapshot(), today=timezone.now().date())
    return render(request, "site_pages/pricing.html", context)


@require_safe
def providers(request: HttpRequest) -> HttpResponse:
    snapshot = get_snapshot()
    regions: dict[str, set[str]] = {pid: set() for pid in snapshot.providers}
    models: dict[str, set[str]] = {pid: set() for pid in snapshot.providers}
    for model in snapshot.models.values():
        for offering in model.offerings:
            regions.setdefault(offering.provider_id, set()).add(offering.region)
            models.setdefault(offering.provider_id, set()).add(model.id)
    rows = [
        {
            "provider": p,
            "regions": sorted(regions.get(p.id, ())),
            "model_count": len(models.get(p.id, ())),
        }
        for p in sorted(snapshot.providers.values(), key=lambda p: p.name.lower())
    ]
    return render(request, "site_pages/providers.html", {"rows": rows})


@require_safe
def status(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    incidents = [
        (incident, render_markdown(incident.body, allow_html=False))
        for incident in Incident.objects.shown_on_status(now=now)
    ]
    rows = build_status_rows(get_snapshot(), now=time.time())
    context = {
        "rows": rows,
        "incidents": incidents,
        "open_count": sum(1 for incident, _ in incidents if incident.is_open),
        "down_count": sum(1 for r in rows if r.state != "ok"),
        "checked_at": now,
    }
    return render(request, "site_pages/status.html", context)


@require_safe
def changelog(request: HttpRequest) -> HttpResponse:
    entries = [
        (entry, render_markdown(entry.body, allow_html=False))
        for entry in ChangelogEntry.objects.all()
    ]
    methodologies = MethodologyVersion.objects.order_by("-effective_at", "version")
    context = {"entries": entries, "methodologies": methodologies}
    return render(request, "site_pages/changelog.html", context)
