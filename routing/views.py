"""The API views (OpenAI-compatible, and Anthropic Messages for one path): thin adapters from
HTTP to the gateway functions."""

import functools
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse

from billing.models import Generation
from billing.money import exact_credits, micros_to_credits
from billing.spending import account_credits, balance_of, key_spend_status
from catalog.filters import FilterError, filter_models
from catalog.presenters import model_to_api
from catalog.snapshot import get_snapshot
from keys.auth import AuthError, KeyContext, authenticate
from routing import anthropic_inbound, gateway
from routing.errors import ApiError
from routing.validation import body_too_large


def _method_not_allowed(allowed: str) -> HttpResponse:
    return ApiError(
        405, "method_not_allowed", f"Use {allowed} on this endpoint.", type="invalid_request_error"
    ).response({"Allow": allowed})


async def chat_completions(request: HttpRequest) -> HttpResponse:
    """Other methods get a 405 here. POST is answered ahead of Django by
    ``routing.asgi_endpoint``; this branch only serves a deployment without that wrapper."""
    if request.method != "POST":
        return _method_not_allowed("POST")
    request_id = gateway.request_id_from(request.headers.get("X-Request-ID"))
    try:
        raw = request.body  # Django enforces DATA_UPLOAD_MAX_MEMORY_SIZE = the same limit
    except RequestDataTooBig:
        limit = settings.LOWROUTER_MAX_BODY_BYTES
        return body_too_large(limit).response({"X-Request-ID": request_id})
    reply = await gateway.chat_completion(
        authorization=request.headers.get("Authorization"),
        raw_body=raw,
        request_id=request_id,
        region_header=request.headers.get("X-LowRouter-Region"),
    )
    return reply.as_django()


async def anthropic_messages(request: HttpRequest) -> HttpResponse:
    """``chat_completions`` for Anthropic's Messages format; errors in Messages' shape."""
    request_id = gateway.request_id_from(request.headers.get("X-Request-ID"))
    ids = {"X-Request-ID": request_id}
    if request.method != "POST":
        refused = ApiError(405, "method_not_allowed", "Use POST on this endpoint.")
        return anthropic_inbound.error_reply(refused, {**ids, "Allow": "POST"}).as_django()
    try:
        raw = request.body
    except RequestDataTooBig:
        too_large = body_too_large(settings.LOWROUTER_MAX_BODY_BYTES)
        return anthropic_inbound.error_reply(too_large, ids).as_django()
    reply = await anthropic_inbound.create_message(
        gateway.chat_completion,
        authorization=anthropic_inbound.authorization_from(
            request.headers.get("Authorization"), request.headers.get("x-api-key")
        ),
        raw_body=raw,
        request_id=request_id,
        region_header=request.headers.get("X-LowRouter-Region"),
    )
    return reply.as_django()


def _key_from(request: HttpRequest, *, required: bool) -> KeyContext | None:
    header = request.headers.get("Authorization")
    if not header and not required:
        return None
    try:
        return authenticate(header)
    except AuthError as exc:
        raise ApiError(401, exc.code, exc.message) from exc


def read_endpoint(*, key: str) -> Callable:
    """A GET/HEAD API view: checks the method, authenticates (``key`` is "required" or
    "optional"), and turns the view's dict into JSON, or its ApiError into the error shape;
    authenticated answers carry X-Credit-Balance. HEAD runs the same code and costs nothing."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, **kwargs: object) -> HttpResponse:
            if request.method not in ("GET", "HEAD"):
                return _method_not_allowed("GET, HEAD")
            caller = None
            try:
                caller = _key_from(request, required=key == "required")
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


@read_endpoint(key="optional")
def list_models(request: HttpRequest, key: KeyContext | None) -> dict:
    snapshot = get_snapshot()
    visible = [m for m in snapshot.models.values() if key is None or key.allows_model(m.id)]
    try:
        # The same filters as the model browser's URL parameters (one implementation).
        chosen = filter_models(visible, request.GET)
    except FilterError as exc:
        raise ApiError(400, "invalid_filter", exc.message, param=exc.param) from exc
    return {"object": "list", "data": [model_to_api(m, snapshot.eco) for m in chosen]}


@read_endpoint(key="optional")
def retrieve_model(request: HttpRequest, key: KeyContext | None, model_id: str) -> dict:
    snapshot = get_snapshot()
    model = snapshot.model(model_id)
    if model is None or (key is not None and not key.allows_model(model.id)):
        raise ApiError(
            404, "model_not_found", f"The model '{model_id}' does not exist.", param="model"
        )
    return model_to_api(model, snapshot.eco)


def generation_to_api(gen: Generation) -> dict:
    eco = None
    if gen.methodology_version:
        eco = {
            "energy_wh": gen.energy_wh,
            "carbon_g": gen.carbon_g,
            "carbon_per_1k_tokens_g": gen.carbon_per_1k_tokens_g,
            "accuracy": gen.eco_accuracy,
            "methodology_version": gen.methodology_version,
            "inputs": gen.eco_inputs,
        }
    price = {
        "prompt": gen.prompt_price_eur,
        "completion": gen.completion_price_eur,
        "cached_prompt": gen.cached_prompt_price_eur,
        "platform_fee": gen.platform_fee_eur,
    }
    return {
        "generation_id": gen.id,
        "created_at": gen.created_at.isoformat(),
        "completed_at": gen.completed_at.isoformat() if gen.completed_at else None,
        "key_id": gen.key_id,
        "requested_model": gen.requested_model,
        "resolved_model": gen.resolved_model,
        "provider": gen.provider,
        "region": gen.region,
        "stream": gen.stream,
        "prompt_tokens": gen.prompt_tokens,
        "completion_tokens": gen.completion_tokens,
        "cached_prompt_tokens": gen.cached_prompt_tokens,
        "total_tokens": gen.total_tokens,
        "latency_ms": gen.latency_ms,
        "cost_credits": str(micros_to_credits(gen.cost_micros)),
        "unbilled_credits": str(micros_to_credits(gen.unbilled_micros)),
        "prices_eur_per_1m": {k: str(v) if v is not None else None for k, v in price.items()},
        "status": gen.status,
        "error_code": gen.error_code or None,
        "eco": eco,
        "routing_trace": gen.routing_trace,
    }


def _own_generation(key: KeyContext, generation_id: str) -> Generation:
    gen = Generation.objects.filter(pk=generation_id[:40], account_id=key.account_id).first()
    if gen is None:
        raise ApiError(
            404, "generation_not_found", f"No generation '{generation_id[:40]}' on this account."
        )
    return gen


@read_endpoint(key="required")
def generation_detail(request: HttpRequest, key: KeyContext, generation_id: str) -> dict:
    """The usage record of one of the caller's generations (404 for anyone else's)."""
    return generation_to_api(_own_generation(key, generation_id))


@read_endpoint(key="required")
def generation_metrics(request: HttpRequest, key: KeyContext, generation_id: str) -> dict:
    """The eco record of one of the caller's generations."""
    gen = _own_generation(key, generation_id)
    return {
        "generation_id": gen.id,
        "resolved_model": gen.resolved_model,
        "provider": gen.provider,
        "region": gen.region,
        "total_tokens": gen.total_tokens,
        "eco": generation_to_api(gen)["eco"],
    }


@read_endpoint(key="required")
def credits(request: HttpRequest, key: KeyContext) -> dict:
    """Balance and spend this month, for scripts that watch spend."""
    return account_credits(key.account_id)


@read_endpoint(key="required")
def key_status(request: HttpRequest, key: KeyContext) -> dict:
    """The calling key's limits, spend today and this month, what remains, and expiry."""
    return key_spend_status(key)


def api_not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    missing = ApiError(
        404, "not_found", f"No API endpoint at {request.path!r}.", type="not_found_error"
    )
    if request.path.startswith("/api/v1/anthropic/"):
        # An Anthropic SDK asking for an endpoint of Anthropic's API this gateway does not
        # serve (count_tokens, batches, files) gets the answer in the shape it reads.
        return anthropic_inbound.error_reply(missing).as_django()
    return missing.response()
