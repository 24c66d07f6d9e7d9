"""The API views (OpenAI-compatible, and Anthropic Messages for one path): thin adapters from
HTTP to the gateway functions."""

import functools
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase

from billing.models import Generation
from billing.money import exact_credits
from billing.spending import account_credits, balance_of, key_spend_status
from catalog.filters import FilterError, filter_models
from catalog.presenters import model_to_api
from catalog.snapshot import get_snapshot
from keys.auth import AuthError, KeyContext, authenticate
from routing import anthropic_inbound, gateway
from routing.errors import ApiError


def _method_not_allowed(allowed: str) -> HttpResponse:
    return ApiError(
        405, "method_not_allowed", f"Use {allowed} on this endpoint.", type="invalid_request_error"
    ).response({"Allow": allowed})


def chat_completions(request: HttpRequest) -> HttpResponse:
    """POST is answered ahead of Django by ``routing.asgi_endpoint`` (the only way the product
    is served); what reaches Django on this path is another method."""
    return _method_not_allowed("POST")


def anthropic_messages(request: HttpRequest) -> HttpResponseBase:
    """``chat_completions`` for Anthropic's Messages path: the 405 in Messages' shape."""
    request_id = gateway.request_id_from(request.headers.get("X-Request-ID"))
    refused = ApiError(405, "method_not_allowed", "Use POST on this endpoint.")
    headers = {"X-Request-ID": request_id, "Allow": "POST"}
    return anthropic_inbound.error_reply(refused, headers).as_django()


def _key_from(request: HttpRequest, *, required: bool) -> KeyContext | None:
    header = request.headers.get("Authorization")
    if not header and not required:
        return None
    try:
        return authenticate(header)
    except AuthError as exc:
        raise ApiError(401, exc.code, exc.message) from exc


def read_endpoint(*, key_required: bool) -> Callable:
    """A GET/HEAD API view: checks the method, authenticates (a caller without a key is refused
    when ``key_required``, else served as anonymous), and turns the view's dict into JSON, or
    its ApiError into the error shape; authenticated answers carry X-Credit-Balance. HEAD runs
    the same code and costs nothing."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, **kwargs: object) -> HttpResponse:
            if request.method not in ("GET", "HEAD"):
                return _method_not_allowed("GET, HEAD")
            caller = None
            try:
                caller = _key_from(request, required=key_required)
                data = view(request, caller, **kwargs)
            except ApiError as err:
                resp = err.response()
            else:
                resp = JsonResponse(data)
            if caller is not None:
                resp["X-Credit-Balance"] = exact_credits(balance_of(caller.account_id))
            return resp

        return wrapper

    return decorate


@read_endpoint(key_required=False)
def list_models(request: HttpRequest, key: KeyContext | None) -> dict:
    snapshot = get_snapshot()
    visible = [m for m in snapshot.models.values() if key is None or key.allows_model(m.id)]
    try:
        # The same filters as the model browser's URL parameters (one implementation).
        chosen = filter_models(visible, request.GET)
    except FilterError as exc:
        raise ApiError(400, "invalid_filter", exc.message, param=exc.param) from exc
    return {"object": "list", "data": [model_to_api(m, snapshot.eco) for m in chosen]}


@read_endpoint(key_required=False)
def retrieve_model(request: HttpRequest, key: KeyContext | None, model_id: str) -> dict:
    snapshot = get_snapshot()
    model = snapshot.model(model_id)
    if model is None or (key is not None and not key.allows_model(model.id)):
        raise ApiError(
            404, "model_not_found", f"The model '{model_id}' does not exist.", param="model"
        )
    return model_to_api(model, snapshot.eco)


def _own_generation(key: KeyContext, generation_id: str) -> Generation:
    # No stored id holds a NUL, and PostgreSQL refuses one in a query parameter outright.
    lookup = generation_id[:40]
    gen = None
    if "\x00" not in lookup:
        gen = Generation.objects.for_account(key.account_id).filter(pk=lookup).first()
    if gen is None:
        raise ApiError(
            404, "generation_not_found", f"No generation '{generation_id[:40]}' on this account."
        )
    return gen


@read_endpoint(key_required=True)
def generation_detail(request: HttpRequest, key: KeyContext, generation_id: str) -> dict:
    """The usage record of one of the caller's generations (404 for anyone else's)."""
    return _own_generation(key, generation_id).to_api()


@read_endpoint(key_required=True)
def generation_metrics(request: HttpRequest, key: KeyContext, generation_id: str) -> dict:
    """The eco record of one of the caller's generations."""
    gen = _own_generation(key, generation_id)
    return {
        "generation_id": gen.id,
        "resolved_model": gen.resolved_model,
        "provider": gen.provider,
        "region": gen.region,
        "total_tokens": gen.total_tokens,
        "eco": gen.eco_to_api(),
    }


@read_endpoint(key_required=True)
def credits(request: HttpRequest, key: KeyContext) -> dict:
    """Balance and spend this month, for scripts that watch spend."""
    return account_credits(key.account_id)


@read_endpoint(key_required=True)
def key_status(request: HttpRequest, key: KeyContext) -> dict:
    """The calling key's limits, spend today and this month, what remains, and expiry."""
    return key_spend_status(key)


def api_not_found(request: HttpRequest, rest: str = "") -> HttpResponseBase:
    missing = ApiError(
        404, "not_found", f"No API endpoint at {request.path!r}.", type="not_found_error"
    )
    # An Anthropic SDK asking for an endpoint of Anthropic's API this gateway does not serve
    # (count_tokens, batches, files) gets the answer in the shape it reads.
    return anthropic_inbound.api_error_reply(request.path, missing).as_django()
