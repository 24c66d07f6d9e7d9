"""API requests always get the API's error shape, even when something unexpected breaks, and
a database that cannot serve a request gets a 503 (API shape or a plain page), never a 500."""

import logging
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import DisallowedHost
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.template.loader import render_to_string

from routing import anthropic_inbound
from routing.errors import ApiError, bad_host, database_unavailable
from routing.gateway import request_id_from

log = logging.getLogger(__name__)


def _internal_error() -> HttpResponse:
    return ApiError(
        500, "internal_error", "The gateway hit an unexpected error; nothing was charged."
    ).response()


def _refuse_bad_host(request: HttpRequest) -> HttpResponseBase | None:
    """An API request for a host this server does not serve gets Django's refusal (400) as an
    API answer, not the HTML page the first middleware to read the host would raise it as."""
    if not request.path.startswith("/api/"):
        return None
    try:
        request.get_host()
    except DisallowedHost:
        return anthropic_inbound.api_error_reply(request.path, bad_host()).as_django()
    return None


def _database_unavailable(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return database_unavailable().response()
    # Rendered without the request: the page's context (the signed-in user, the session)
    # would need the very database that is missing.
    return HttpResponse(render_to_string("503.html"), status=503)


class ApiErrorMiddleware:
    """Turns an unhandled exception under /api/ into a JSON 500 (never a page, never a trace),
    and a request there for a host this server does not serve into a JSON 400.
    A database that refused or lost the connection (PostgreSQL "too many clients", a restart,
    no pooled connection free in time) answers 503 instead, on pages too.

    The log line names the exception type and path only: exception messages can quote input.
    """

    async_capable = True
    sync_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self._acall(request)
        return self._tag(request, _refuse_bad_host(request) or self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        refused = _refuse_bad_host(request)
        return self._tag(request, refused or await self.get_response(request))

    @staticmethod
    def _tag(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        """Every API response carries an X-Request-ID (the caller's when it is safe)."""
        if request.path.startswith("/api/") and "X-Request-ID" not in response:
            response["X-Request-ID"] = request_id_from(request.headers.get("X-Request-ID"))
        return response

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if isinstance(exc, (OperationalError, InterfaceError)):
            log.warning("database unavailable (%s) on %s", type(exc).__name__, request.path)
            return _database_unavailable(request)
        if not request.path.startswith("/api/"):
            return None
        log.error("unhandled %s on %s", type(exc).__name__, request.path)
        return _internal_error()
