"""The chat completion request path: authenticate, route, reserve, call upstream, settle.

Async end to end. On PostgreSQL each database step is one statement sent from the event loop:
authenticate (skipped for a key this process has seen: the reservation checks the key's row),
reserve, settle. On SQLite the same work runs in worker threads through ``run_db``
(authenticate + route + reserve as one hand-off, settle as another). Routing reads in-process
copies of the catalogue, policies and health; the upstream response is relayed chunk by chunk.
No prompt or completion text is stored or logged here.
"""

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from billing.costs import Prices, Usage, usage_cost_micros, worst_case_micros
from billing.ids import new_generation_id
from billing.models import GenerationStatus
from billing.money import format_credits, token_cost_micros
from billing.spending import (
    HoldTicket,
    KeyChanged,
    Settlement,
    SpendRefused,
    areserve_credits,
    asettle_generation,
    reserve_credits,
    settle_generation,
)
from catalog.models import WireFormat
from catalog.snapshot import CatalogSnapshot, ModelView, OfferingView, aget_snapshot
from keys.auth import AuthError, KeyContext, aauthenticate, authenticate, forget_recent_key
from lowrouter import jsonio
from lowrouter.asyncdb import DatabaseUnavailable, run_db, statements_on_loop
from routing import anthropic_adapter, eco_bridge, health, upstream
from routing.errors import ApiError, database_unavailable
from routing.replies import LastChunk, Reply
from routing.router import RoutePlan, aroute_request, route_request
from routing.upstream import UpstreamFailure
from routing.validation import ChatRequest, parse_chat_request, upstream_payload

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # the first try and at most two retries
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def request_id_from(header: str | None) -> str:
    """The caller's X-Request-ID when it is a safe token, else a fresh one (no header
    injection: anything with other characters is replaced, never echoed)."""
    if header and _REQUEST_ID_OK.match(header):
        return header
    return "req_" + uuid.uuid4().hex


@dataclass
class Call:
    """The state of one request as it moves through the path."""

    request_id: str
    generation_id: str = field(default_factory=new_generation_id)
    # Read once and used for the whole request (key expiry, spend periods, the record).
    created_at: datetime = field(default_factory=partial(datetime.now, UTC))
    started: float = field(default_factory=time.monotonic)
    key: KeyContext | None = None
    req: ChatRequest | None = None
    plan: RoutePlan | None = None
    hold: HoldTicket | None = None
    snapshot: CatalogSnapshot | None = None

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)


def _prices(model: ModelView, o: OfferingView) -> Prices:
    return Prices(
        prompt=o.prompt_eur,
        completion=o.completion_eur,
        cached_prompt=o.cached_prompt_eur,
        platform_fee=model.platform_fee_eur,
    )


def _completion_bound(req: ChatRequest, model: ModelView) -> int:
    # Without max_tokens the hold covers the model's whole output limit (documented policy).
    return min(req.max_tokens or model.max_output_tokens, model.max_output_tokens)


def _worst_case(call: Call) -> int:
    model = call.plan.model
    bound = _completion_bound(call.req, model)
    return max(
        worst_case_micros(call.req.prompt_token_bound, bound, _prices(model, o))
        for o in call.plan.candidates
    )


def _refusal(call: Call, refused: SpendRefused) -> ApiError:
    """Turn a refused reservation into an error that says what is left and what would fit."""
    model = call.plan.model
    worst = max(call.plan.candidates, key=lambda o: o.completion_eur + o.prompt_eur)
    prices = _prices(model, worst)
    prompt_cost = token_cost_micros(
        call.req.prompt_token_bound, prices.prompt + prices.platform_fee, round_up=True
    )
    per_token = token_cost_micros(1_000_000, prices.completion + prices.platform_fee) / 1_000_000
    room = refused.remaining_micros - prompt_cost
    fits = int(room // per_token) if per_token > 0 and room > 0 else 0
    fits = min(fits, model.max_output_tokens)
    bound = _completion_bound(call.req, model)
    asked = (
        f"max_tokens={call.req.max_tokens}"
        if call.req.max_tokens
        else f"no max_tokens, so the model's full output limit of {bound} tokens is reserved"
    )
    message = f"{refused.message}. The worst case of this request ({asked}) does not fit; " + (
        f"a request with max_tokens <= {fits} would."
        if fits > 0
        else "not even a one-token completion would."
    )
    headers = {}
    if refused.retry_after:
        headers["Retry-After"] = str(refused.retry_after)
    return ApiError(refused.status, refused.code, message, headers=headers)


def _common_headers(call: Call, balance_micros: int | None) -> dict[str, str]:
    headers = {"X-Request-ID": call.request_id}
    if balance_micros is not None:
        headers["X-Credit-Balance"] = format_credits(balance_micros)
    return headers


def _lowrouter_block(call: Call, offering: OfferingView, eco: dict | None) -> dict:
    block = {
        "generation_id": call.generation_id,
        "provider": offering.provider_id,
        "region": offering.region,
    }
    if eco:
        block["eco"] = eco
    return block


def _served_headers(call: Call, offering: OfferingView) -> dict[str, str]:
    return {
        "X-LowRouter-Generation-ID": call.generation_id,
        "X-LowRouter-Provider": offering.provider_id,
        "X-LowRouter-Region": offering.region,
    }


def _settlement(
    call: Call,
    *,
    status: str,
    offering: OfferingView | None,
    usage: Usage | None,
    latency_ms: int | None,
    error_code: str = "",
) -> Settlement:
    model = call.plan.model
    s = Settlement(
        generation_id=call.generation_id,
        created_at=call.created_at,
        requested_model=call.req.model,
        resolved_model=model.id,
        status=status,
        stream=call.req.stream,
        latency_ms=latency_ms,
        error_code=error_code,
        routing_trace=call.plan.trace,
    )
    if offering is not None:
        prices = _prices(model, offering)
        s.provider, s.region = offering.provider_id, offering.region
        s.prompt_price_eur, s.completion_price_eur = prices.prompt, prices.completion
        s.cached_prompt_price_eur, s.platform_fee_eur = prices.cached_prompt, prices.platform_fee
        if usage is not None:
            s.prompt_tokens = usage.prompt_tokens
            s.completion_tokens = usage.completion_tokens
            s.cached_prompt_tokens = usage.cached_prompt_tokens
            s.cost_micros = usage_cost_micros(usage, prices)
            s.eco = (
                eco_bridge.estimate(call.snapshot.eco, model, offering, usage, call.elapsed_ms())
                or {}
            )
    return s


async def _settle(call: Call, settlement: Settlement) -> int | None:
    """Settle and return the balance after it. A client that goes away while we write must not
    leave the hold and the record half-done: on the event loop the settlement's statement is
    seen through before a cancellation is raised (``asettle_generation``); in a database thread
    it runs to its end anyway, and the shield keeps the wait for it from being cancelled."""
    try:
        if statements_on_loop():
            _, balance = await asettle_generation(hold=call.hold, outcome=settlement)
        else:
            settling = run_db(settle_generation, hold=call.hold, outcome=settlement)
            _, balance = await asyncio.shield(settling)
        return balance
    except DatabaseUnavailable:
        # The hold stays in place and the orphan reaper releases it; nothing is charged.
        log.error("settlement failed: database unavailable (generation %s)", call.generation_id)
        return None


def _attempt_record(o: OfferingView, outcome: str, started: float, **extra: object) -> dict:
    return {
        "provider": o.provider_id,
        "region": o.region,
        "outcome": outcome,
        "latency_ms": int((time.monotonic() - started) * 1000),
        **extra,
    }


def _upstream_error(failure: UpstreamFailure) -> ApiError:
    if failure.kind == "timeout":
        return ApiError(504, "upstream_timeout", "The upstream provider timed out.")
    if failure.kind == "rate_limited":
        headers = {"Retry-After": str(int(failure.retry_after))} if failure.retry_after else {}
        return ApiError(
            503,
            "upstream_rate_limited",
            "Every candidate upstream is rate limiting requests; retry later.",
            headers=headers,
        )
    if failure.kind == "http_error" and failure.status and failure.status < 500:
        err = failure.error or {}
        return ApiError(
            failure.status,
            str(err.get("code") or "upstream_rejected_request"),
            f"The upstream provider rejected the request: {failure.message}",
            type=str(err.get("type") or "invalid_request_error"),
            param=err.get("param") if isinstance(err.get("param"), str) else None,
        )
    return ApiError(502, "upstream_error", f"Upstream failure: {failure.message}")


def _admit(
    call: Call, authorization: str | None, raw_body: bytes, region_header: str | None
) -> None:
    """Authenticate, parse, route and reserve: everything before the upstream call, in this
    order (so a bad key is a 401 whatever the body), as one unit of work in a database thread.
    One hand-off from the event loop instead of two; the routing between the two queries reads
    only in-process copies."""
    try:
        call.key = authenticate(authorization, now=call.created_at)
    except AuthError as exc:
        raise ApiError(401, exc.code, exc.message) from exc
    call.req = parse_chat_request(raw_body)
    call.plan = route_request(call.snapshot, call.req, call.key, region_header=region_header)
    try:
        call.hold = reserve_credits(**_reserve_args(call))
    except SpendRefused as refused:
        raise _refusal(call, refused) from refused


async def _admit_on_loop(
    call: Call, authorization: str | None, raw_body: bytes, region_header: str | None
) -> None:
    """``_admit`` on the event loop (PostgreSQL), each statement sent from the loop. A key this
    process has seen before is taken from memory, with no authentication query: the reservation
    checks its row in the same statement and refuses if it is no longer usable or no longer as
    read (KeyChanged), and the key is then read afresh and the request routed again. A routing
    refusal made on a remembered key is likewise only given after reading the key afresh."""
    for fresh in (False, True):
        try:
            call.key = await aauthenticate(authorization, now=call.created_at, recent=not fresh)
        except AuthError as exc:
            raise ApiError(401, exc.code, exc.message) from exc
        if call.req is None:
            call.req = parse_chat_request(raw_body)
        try:
            call.plan = await aroute_request(
                call.snapshot, call.req, call.key, region_header=region_header
            )
        except ApiError:
            if fresh:
                raise
            # Refused on what the remembered key allows: answer only from the row as it is.
            forget_recent_key(authorization)
            continue
        try:
            call.hold = await areserve_credits(
                **_reserve_args(call), key_fingerprint=call.key.fingerprint
            )
            return
        except KeyChanged:
            forget_recent_key(authorization)
        except SpendRefused as refused:
            raise _refusal(call, refused) from refused
    # Changed again between two consecutive statements: an edit racing this request.
    raise ApiError(
        503, "key_changed", "The API key was changed while this request was admitted; retry."
    )


def _reserve_args(call: Call) -> dict:
    return {
        "account_id": call.key.account_id,
        "key_id": call.key.key_id,
        "key_name": call.key.key_name,
        "daily_limit": call.key.daily_credit_limit,
        "monthly_limit": call.key.monthly_credit_limit,
        "amount_micros": _worst_case(call),
        "now": call.created_at,
    }


async def _begin(
    request_id: str, authorization: str | None, raw_body: bytes, region_header: str | None = None
) -> Call:
    call = Call(request_id=request_id, snapshot=await aget_snapshot())
    if statements_on_loop():
        await _admit_on_loop(call, authorization, raw_body, region_header)
    else:
        await run_db(_admit, call, authorization, raw_body, region_header)
    return call


async def chat_completion(
    *,
    authorization: str | None,
    raw_body: bytes,
    request_id: str,
    region_header: str | None = None,
) -> Reply:
    try:
        call = await _begin(request_id, authorization, raw_body, region_header)
    except ApiError as err:
        return err.reply({"X-Request-ID": request_id})
    except DatabaseUnavailable:
        return database_unavailable().reply({"X-Request-ID": request_id})
    if call.req.stream:
        return await _stream(call)
    return await _complete(call)


def _payload(call: Call, offering: OfferingView) -> dict:
    payload = upstream_payload(call.req, offering.upstream_model, None)
    if offering.wire_format == WireFormat.ANTHROPIC:
        # Messages requires max_tokens: send the bound the hold was sized for.
        payload["max_tokens"] = _completion_bound(call.req, call.plan.model)
    return payload


async def _complete(call: Call) -> Reply:
    trace = call.plan.trace
    failure: UpstreamFailure | None = None
    for offering in _attempt_order(call):
        started = time.monotonic()
        payload = _payload(call, offering)
        slot = (offering.provider_id, offering.region)
        try:
            resp = await upstream.post_json(offering, "/chat/completions", payload)
            first_byte_ms = int((time.monotonic() - started) * 1000)
            data = await upstream.read_json(resp)
            if offering.wire_format == WireFormat.ANTHROPIC:
                data = anthropic_adapter.from_messages_response(data, model=call.plan.model.id)
        except UpstreamFailure as exc:
            failure = exc
            trace["attempts"].append(
                _attempt_record(
                    offering, exc.kind, started, status=exc.status, retry_after=exc.retry_after
                )
            )
            # Shared with every process before we move on: the next request skips this slot.
            await health.anote_failure(
                slot, kind=exc.kind, status=exc.status, retry_after=exc.retry_after
            )
            # A body cut before it was read has not reached the client either: fail over.
            if exc.retryable or exc.kind == "cut":
                continue
            # A 4xx caused by the request: returned as is; billed only if it consumed tokens.
            usage = Usage.from_openai(exc.usage)
            settlement = _settlement(
                call,
                status=GenerationStatus.CLIENT_ERROR,
                offering=offering,
                usage=usage,
                latency_ms=call.elapsed_ms(),
                error_code=_upstream_error(exc).code,
            )
            balance = await _settle(call, settlement)
            return _upstream_error(exc).reply(_common_headers(call, balance))
        trace["attempts"].append(_attempt_record(offering, "ok", started))
        health.note_success(slot, first_byte_ms)
        usage = Usage.from_openai(data.get("usage"))
        settlement = _settlement(
            call,
            status=GenerationStatus.OK,
            offering=offering,
            usage=usage or Usage(),
            latency_ms=call.elapsed_ms(),
        )
        balance = await _settle(call, settlement)
        data["model"] = call.plan.model.id
        data["lowrouter"] = _lowrouter_block(call, offering, settlement.eco.get("block"))
        headers = {
            "Content-Type": "application/json",
            **_common_headers(call, balance),
            **_served_headers(call, offering),
        }
        return Reply(200, headers, jsonio.dumps(data))
    return await _fail(call, failure)


async def _fail(call: Call, failure: UpstreamFailure | None) -> Reply:
    """Every attempt failed before anything reached the client: record it, charge nothing."""
    err = _upstream_error(failure) if failure else ApiError(503, "no_available_provider", "")
    settlement = _settlement(
        call,
        status=GenerationStatus.UPSTREAM_ERROR,
        offering=None,
        usage=None,
        latency_ms=call.elapsed_ms(),
        error_code=err.code,
    )
    balance = await _settle(call, settlement)
    return err.reply(_common_headers(call, balance))


def _attempt_order(call: Call) -> list[OfferingView]:
    """The winner's region first, best score first; other regions only when neither a region
    pin nor ``fallback: false`` forbids it (a pinned region is never left). At most two
    retries."""
    first = call.plan.candidates[0]
    same_region = [o for o in call.plan.candidates if o.region == first.region]
    others = [o for o in call.plan.candidates if o.region != first.region]
    if not call.plan.other_regions_allowed:
        others = []
    return (same_region + others)[:MAX_ATTEMPTS]


def _sse(obj: dict) -> bytes:
    return b"data: " + jsonio.dumps(obj) + b"\n\n"


_DONE = b"data: [DONE]\n\n"


async def _stream(call: Call) -> Reply:
    trace = call.plan.trace
    failure: UpstreamFailure | None = None
    for offering in _attempt_order(call):
        started = time.monotonic()
        payload = _payload(call, offering)
        resp = None
        slot = (offering.provider_id, offering.region)
        try:
            resp = await upstream.post_json(offering, "/chat/completions", payload)
            first_byte_ms = int((time.monotonic() - started) * 1000)
            events = upstream.iter_sse(resp)
            if offering.wire_format == WireFormat.ANTHROPIC:
                events = anthropic_adapter.translate_events(events, model=call.plan.model.id)
            # Failover is only possible before the first byte reaches the client, so the
            # first event is read here, inside the attempt.
            first = await anext(events)
            first_chunk = jsonio.loads(first.data)
            if not isinstance(first_chunk, dict) or "error" in first_chunk:
                raise UpstreamFailure("malformed", "The upstream stream began with an error.")
        except StopAsyncIteration:
            failure = UpstreamFailure("cut", "The upstream stream ended before any data.")
        except ValueError:
            failure = UpstreamFailure("malformed", "The upstream stream began with invalid JSON.")
        except UpstreamFailure as exc:
            failure = exc
        else:
            trace["attempts"].append(_attempt_record(offering, "ok", started))
            health.note_success(slot, first_byte_ms)
            headers = {
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
                **_common_headers(call, call.hold.balance_micros),
                **_served_headers(call, offering),
            }
            return Reply(200, headers, stream=_relay(call, offering, resp, events, first_chunk))
        if resp is not None:
            resp.close()
        trace["attempts"].append(
            _attempt_record(
                offering,
                failure.kind,
                started,
                status=failure.status,
                retry_after=failure.retry_after,
            )
        )
        await health.anote_failure(
            slot, kind=failure.kind, status=failure.status, retry_after=failure.retry_after
        )
        if not failure.retryable and failure.kind != "cut":
            settlement = _settlement(
                call,
                status=GenerationStatus.CLIENT_ERROR,
                offering=offering,
                usage=Usage.from_openai(failure.usage),
                latency_ms=call.elapsed_ms(),
                error_code=_upstream_error(failure).code,
            )
            balance = await _settle(call, settlement)
            return _upstream_error(failure).reply(_common_headers(call, balance))
    return await _fail(call, failure)


async def _relay(
    call: Call,
    offering: OfferingView,
    resp: upstream.Response,
    events: AsyncIterator[upstream.SseEvent],
    first_chunk: dict,
) -> AsyncIterator[bytes]:
    """Relay the upstream stream chunk by chunk, then the summary and ``[DONE]``.

    Finish chunks are held back to carry the ``lowrouter`` summary (a chunk whose ``choices``
    is non-empty, so ``chunk.choices[0]`` works in the naive SDK loop). The usage-only chunk
    (empty ``choices``) is forwarded only when the caller asked for it with include_usage.
    """
    model_id = call.plan.model.id
    first_byte_ms = call.elapsed_ms()
    usage: Usage | None = None
    held: list[dict] = []
    usage_chunk: dict | None = None
    status, error_code, failure = GenerationStatus.OK, "", None
    finished = False
    # Stays True if we leave the loop by cancellation (client disconnect) or aclose().
    interrupted = True
    try:
        chunk: dict | None = first_chunk
        while True:
            if chunk is not None:
                if "error" in chunk:
                    raise UpstreamFailure(
                        "http_error", "The upstream reported an error mid-stream."
                    )
                if isinstance(chunk.get("usage"), dict):
                    usage = Usage.from_openai(chunk["usage"]) or usage
                choices = chunk.get("choices") or []
                chunk["model"] = model_id
                if not choices:
                    if chunk.get("usage") is not None:
                        usage_chunk = chunk
                elif any(c.get("finish_reason") for c in choices if isinstance(c, dict)):
                    finished = True
                    held.append(chunk)
                else:
                    yield _sse(chunk)
            try:
                event = await anext(events)
            except StopAsyncIteration:
                break
            if event.data == "[DONE]":
                break
            try:
                chunk = jsonio.loads(event.data)
            except ValueError:
                raise UpstreamFailure("malformed", "The upstream sent a malformed chunk.") from None
            if not isinstance(chunk, dict):
                raise UpstreamFailure("malformed", "The upstream sent an unexpected chunk.")
        if not finished:
            raise UpstreamFailure("cut", "The upstream stream ended without finishing.")
        interrupted = False
    except UpstreamFailure as exc:
        interrupted = False
        failure = exc
        status, error_code = GenerationStatus.UPSTREAM_ERROR, "upstream_stream_failed"
    finally:
        # Closing the upstream response also cancels the upstream request when we stop early.
        resp.close()
        if interrupted:
            # The client went away (task cancelled or generator closed). Settle what is known;
            # awaiting here is allowed while an async generator is being closed.
            call.plan.trace["attempts"][-1]["outcome"] = "client_disconnected"
            await _settle(
                call,
                _settlement(
                    call,
                    status=GenerationStatus.CLIENT_ERROR,
                    offering=offering,
                    usage=usage,
                    latency_ms=first_byte_ms,
                    error_code="client_disconnected",
                ),
            )

    if failure is not None:
        # After the first byte there is no failover: end the stream with an explicit error
        # event (no [DONE]) and bill only usage the upstream actually reported. The slot is
        # still marked, so the next request avoids it.
        call.plan.trace["attempts"][-1]["outcome"] = f"failed_mid_stream:{failure.kind}"
        await health.anote_failure(
            (offering.provider_id, offering.region),
            kind=failure.kind,
            status=failure.status,
            retry_after=failure.retry_after,
        )
        settlement = _settlement(
            call,
            status=status,
            offering=offering,
            usage=usage,
            latency_ms=first_byte_ms,
            error_code=error_code,
        )
        await _settle(call, settlement)
        yield LastChunk(
            _sse(
                ApiError(
                    502, "upstream_stream_failed", f"Upstream failure: {failure.message}"
                ).body()
            )
        )
        return

    settlement = _settlement(
        call,
        status=GenerationStatus.OK,
        offering=offering,
        usage=usage or Usage(),
        latency_ms=first_byte_ms,
    )
    await _settle(call, settlement)
    summary = _lowrouter_block(call, offering, settlement.eco.get("block"))
    if held:
        held[-1]["lowrouter"] = summary
    tail = [_sse(chunk) for chunk in held]
    if usage_chunk is not None and call.req.client_wants_usage:
        usage_chunk["lowrouter"] = summary
        tail.append(_sse(usage_chunk))
    tail.append(_DONE)
    # All ready at once: one write, not one per event.
    yield LastChunk(b"".join(tail))
