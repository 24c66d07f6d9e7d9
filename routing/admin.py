"""Operator admin for the gateway's incidents: upstreams that overran their output bound.

The admin index carries a banner while any upstream overran in the last 7 days
(``routing.overruns.overrun_alert``): the operator may have paid that provider for output no
customer was charged for. The incidents themselves are listed read-only.
"""

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse

from routing.models import UpstreamOverrun
from routing.overruns import overrun_alert


@admin.register(UpstreamOverrun)
class UpstreamOverrunAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "provider",
        "region",
        "model",
        "generation_id",
        "bound_tokens",
        "completion_tokens",
        "unbilled_micros",
    ]
    list_filter = ["provider"]
    search_fields = ["generation_id", "model"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# The index view is looked up on the site when its URLs are built, after every admin module
# is imported, so wrapping it here puts the banner on the index with no template override.
_index = admin.site.index


def _index_with_overrun_alert(
    request: HttpRequest, extra_context: dict[str, Any] | None = None
) -> HttpResponse:
    alert = overrun_alert()
    if alert:
        messages.warning(request, alert)
    return _index(request, extra_context)


# The admin index gains the banner; Django types the index as returning a TemplateResponse.
admin.site.index = _index_with_overrun_alert  # type: ignore[method-assign, assignment]
