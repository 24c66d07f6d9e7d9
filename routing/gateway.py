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
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from django.conf import settings

from billing.costs import Prices, Usage, usage_cost_micros, worst_case_micros
from billing.ids import new_generation_id
from billing.models import GenerationStatus, UsageSource
from billing.money import exact_credits, token_cost_micros
from billing.spending import (
    HoldTicket,
    KeyChanged,
    Settlement,
    SpendRefused,
    abalance_of,
    arenew_hold,
    areserve_credits,
    asettle_generation,
    balance_of,
    renew_hold,
    reserve_credits,
    settle_generation,
)
from catalog.models import OutputBoundField, WireFormat
from catalog.snapshot import CatalogSnapshot, ModelView, OfferingView, aget_snapshot
from keys.auth import AuthError, KeyContext, aauthenticate, authenticate, forget_recent_key
from lowrouter import jsonio
from lowrouter.asyncdb import DatabaseUnavailable, run_db, statements_on_loop
from routing import anthropic_adapter, eco_bridge, health, overruns, upstream
from routing.errors import ApiError, database_unavailable
from routing.replies import LastChunk, Reply
from routing.router import RoutePlan, aroute_request, route_request
from routing.trace import AttemptOutcome
from routing.upstream import FailureKind, UpstreamFailure
from routing.usage_estimate import estimate_usage, output_pieces
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
class Arrival:
    """A request before admission: what is known before its key and body are checked."""

    request_id: str
    snapshot: CatalogSnapshot
    generation_id: str = field(default_factory=new_generation_id)
    # Read once and used for the whole request (key expiry, spend periods, the record).
    created_at: datetime = field(default_factory=partial(datetime.now, UTC))
    started: float = field(default_factory=time.monotonic)
    # Set once the key is authenticated: whose balance a refusal reports.
    account_id: int | None = None


@dataclass
class Call:
    """An admitted request: authenticated, parsed, routed, its worst case held. Built only by
    admission, whole, so nothing after it handles a half-built request."""

    request_id: str
    snapshot: CatalogSnapshot
    generation_id: str
    created_at: datetime
    started: float
    key: KeyContext
    req: ChatRequest
    plan: RoutePlan
    hold: HoldTicket

    @classmethod
    def admitted(
        cls, a: Arrival, key: KeyContext, req: ChatRequest, plan: RoutePlan, hold: HoldTicket
    ) -> "Call":
        return cls(
            a.request_id, a.snapshot, a.generation_id, a.created_at, a.started, key, req, plan, hold
        )

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    @property
    def output_bound(self) -> int:
        return _output_bound(self.req, self.plan)


def _prices(model: ModelView, o: OfferingView) -> Prices:
    # The router keeps only offerings with EUR prices (one it cannot convert is removed as
    # fx_unavailable), so every candidate has both.
    assert o.prompt_eur is not None and o.completion_eur is not None
    return Prices(
        prompt=o.prompt_eur,
        completion=o.completion_eur,
        cached_prompt=o.cached_prompt_eur,
        platform_fee=model.platform_fee_eur,
    )


def _completion_bound(req: ChatRequest, model: ModelView) -> int:
    """The output-token bound of one completion: the one the hold covers and the one the
    upstream is sent. Without max_tokens it is the model's whole output limit (documented)."""
    return min(req.max_tokens or model.max_output_tokens, model.max_output_tokens)


def _output_bound(req: ChatRequest, plan: RoutePlan) -> int:
    """Every output token the request may produce: ``n`` completions, each up to the bound
    (reasoning tokens included: upstreams count them inside the bound they are sent)."""
    return _completion_bound(req, plan.model) * req.n


def _worst_case(req: ChatRequest, plan: RoutePlan) -> int:
    bound = _output_bound(req, plan)
    return max(
        worst_case_micros(req.prompt_token_bound, bound, _prices(plan.model, o))
        for o in plan.candidates
    )


def _refusal(req: ChatRequest, plan: RoutePlan, refused: SpendRefused) -> ApiError:
    """Turn a refused reservation into an error that says what is left and what would fit."""
    model = plan.model
    worst = max(plan.candidates, key=lambda o: (o.completion_eur or 0) + (o.prompt_eur or 0))
    prices = _prices(model, worst)
    prompt_cost = token_cost_micros(
        req.prompt_token_bound, prices.prompt + prices.platform_fee, round_up=True
    )
    per_token = token_cost_micros(1_000_000, prices.completion + prices.platform_fee) / 1_000_000
    room = refused.remaining_micros - prompt_cost
    n = req.n
    fits = int(room // (per_token * n)) if per_token > 0 and room > 0 else 0
    fits = min(fits, model.max_output_tokens)
    bound = _completion_bound(req, model)
    asked = (
        f"max_tokens={req.max_tokens}"
        if req.max_tokens
        else f"no max_tokens, so the model's full output limit of {bound} tokens is reserved"
    )
    if n > 1:
        asked += f", for each of n={n} completions"
    message = f"{refused.message}. The worst case of this request ({asked}) does not fit; " + (
        f"a request with max_tokens <= {fits} would."
        if fits > 0
        else "not even a one-token completion would."
    )
    headers = {}
    if refused.retry_after:
        headers["Retry-After"] = str(refused.retry_after)
    return ApiError(refused.status, refused.code, message, headers=headers)


def _common_headers(request_id: str, balance_micros: int | None) -> dict[str, str]:
    headers = {"X-Request-ID": request_id}
    if balance_micros is not None:
        # Micro-credit precision, as GET /credits: a request can cost less than 0.01 credit.
        headers["X-Credit-Balance"] = exact_credits(balance_micros)
    return headers


async def _balance_for_refusal(arrival: Arrival) -> int | None:
    """The balance for a refused request's header: one read, on the refusal path only (a
    refusal holds nothing, so no statement of the request path returned it). None before the
    key is known (nothing authenticated) or when the database cannot answer."""
    if arrival.account_id is None:
        return None
    try:
        if statements_on_loop():
            return await abalance_of(arrival.account_id)
        return await run_db(balance_of, arrival.account_id)
    except DatabaseUnavailable:
        return None


def _lowrouter_block(call: Call, offering: OfferingView, eco: dict | None) -> dict:
    block: dict[str, object] = {
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
    usage_source: str = UsageSource.REPORTED,
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
        routing_trace=call.plan.trace.to_dict(),
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
            s.usage_source = usage_source
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
            cost, balance = await asettle_generation(hold=call.hold, outcome=settlement)
        else:
            settling = run_db(settle_generation, hold=call.hold, outcome=settlement)
            cost, balance = await asyncio.shield(settling)
    except DatabaseUnavailable:
        # The hold stays in place and the orphan reaper releases it; nothing is charged.
        log.error("settlement failed: database unavailable (generation %s)", call.generation_id)
        return None
    if settlement.completion_tokens > call.output_bound:
        await _report_overrun(call, settlement, cost)
    return balance


async def _report_overrun(call: Call, settlement: Settlement, cost: int) -> None:
    """The upstream produced more output than the bound it was sent: the hold did not cover it.
    Settlement charged what the key and the wallet could still pay and kept the rest unbilled;
    the operator is told which provider did it (log and admin banner). A rare path, so the
    record costs a statement of its own."""
    overrun = overruns.Overrun(
        generation_id=call.generation_id,
        provider=settlement.provider,
        region=settlement.region,
        model=settlement.resolved_model,
        bound_tokens=call.output_bound,
        completion_tokens=settlement.completion_tokens,
        unbilled_micros=max(0, settlement.cost_micros - cost),
    )
    overruns.log_overrun(overrun)
    try:
        await run_db(overruns.record_overrun, overrun)
    except DatabaseUnavailable:
        log.error(
            "overrun of generation %s not recorded: database unavailable", overrun.generation_id
        )


def _upstream_error(failure: UpstreamFailure) -> ApiError:
    if failure.kind == FailureKind.TIMEOUT:
        return ApiError(504, "upstream_timeout", "The upstream provider timed out.")
    if failure.kind == FailureKind.RATE_LIMITED:
        headers = {"Retry-After": str(int(failure.retry_after))} if failure.retry_after else {}
        return ApiError(
            503,
            "upstream_rate_limited",
            "Every candidate upstream is rate limiting requests; retry later.",
            headers=headers,
        )
    if failure.kind == FailureKind.HTTP_ERROR and failure.status and failure.status < 500:
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
    a: Arrival, authorization: str | None, raw_body: bytes, region_header: str | None
) -> Call:
    """Authenticate, parse, route and reserve: everything before the upstream call, in this
    order (so a bad key is a 401 whatever the body), as one unit of work in a database thread.
    One hand-off from the event loop instead of two; the routing between the two queries reads
    only in-process copies."""
    try:
        key = authenticate(authorization, now=a.created_at)
    except AuthError as exc:
        raise ApiError(401, exc.code, exc.message) from exc
    a.account_id = key.account_id
    req = parse_chat_request(raw_body)
    plan = route_request(a.snapshot, req, key, region_header=region_header)
    try:
        hold = reserve_credits(**_reserve_args(a, key, req, plan))
    except SpendRefused as refused:
        raise _refusal(req, plan, refused) from refused
    return Call.admitted(a, key, req, plan, hold)


async def _admit_on_loop(
    a: Arrival, authorization: str | None, raw_body: bytes, region_header: str | None
) -> Call:
    """``_admit`` on the event loop (PostgreSQL), each statement sent from the loop. A key this
    process has seen before is taken from memory, with no authentication query: the reservation
    checks its row in the same statement and refuses if it is no longer usable or no longer as
    read (KeyChanged), and the key is then read afresh and the request routed again. A routing
    refusal made on a remembered key is likewise only given after reading the key afresh."""
    req: ChatRequest | None = None
    for fresh in (False, True):
        try:
            key = await aauthenticate(authorization, now=a.created_at, recent=not fresh)
        except AuthError as exc:
            raise ApiError(401, exc.code, exc.message) from exc
        a.account_id = key.account_id
        if req is None:
            req = parse_chat_request(raw_body)
        try:
            plan = await aroute_request(a.snapshot, req, key, region_header=region_header)
        except ApiError:
            if fresh:
                raise
            # Refused on what the remembered key allows: answer only from the row as it is.
            forget_recent_key(authorization)
            continue
        try:
            hold = await areserve_credits(
                **_reserve_args(a, key, req, plan), key_fingerprint=key.fingerprint
            )
            return Call.admitted(a, key, req, plan, hold)
        except KeyChanged:
            forget_recent_key(authorization)
        except SpendRefused as refused:
            raise _refusal(req, plan, refused) from refused
    # Changed again between two consecutive statements: an edit racing this request.
    raise ApiError(
        503, "key_changed", "The API key was changed while this request was admitted; retry."
    )


def _reserve_args(a: Arrival, key: KeyContext, req: ChatRequest, plan: RoutePlan) -> dict:
    return {
        "account_id": key.account_id,
        "key_id": key.key_id,
        "key_name": key.key_name,
        "daily_limit": key.daily_credit_limit,
        "monthly_limit": key.monthly_credit_limit,
        "amount_micros": _worst_case(req, plan),
        "now": a.created_at,
    }


async def _begin(
    a: Arrival, authorization: str | None, raw_body: bytes, region_header: str | None = None
) -> Call:
    if statements_on_loop():
        return await _admit_on_loop(a, authorization, raw_body, region_header)
    return await run_db(_admit, a, authorization, raw_body, region_header)


async def chat_completion(
    *,
    authorization: str | None,
    raw_body: bytes,
    request_id: str,
    region_header: str | None = None,
) -> Reply:
    try:
        arrival = Arrival(request_id=request_id, snapshot=await aget_snapshot())
    except DatabaseUnavailable:
        return database_unavailable().reply({"X-Request-ID": request_id})
    try:
        call = await _begin(arrival, authorization, raw_body, region_header)
    except ApiError as err:
        # Refused after authentication (402, 429, 403, 400...): the balance still goes back.
        return err.reply(_common_headers(request_id, await _balance_for_refusal(arrival)))
    except DatabaseUnavailable:
        return database_unavailable().reply({"X-Request-ID": request_id})
    if call.req.stream:
        return await _stream(call)
    return await _complete(call)


def _payload(call: Call, offering: OfferingView) -> dict:
    """The upstream body, carrying exactly the bound the hold was sized for, in the one field
    this upstream obeys (Messages: max_tokens; OpenAI-compatible: the provider's catalogue
    ``output_bound_field``). Always sent: without it an upstream may generate past the hold."""
    field = offering.output_bound_field
    if offering.wire_format == WireFormat.ANTHROPIC:
        field = OutputBoundField.MAX_TOKENS
    bound = _completion_bound(call.req, call.plan.model)
    return upstream_payload(
        call.req, offering.upstream_model, output_bound=bound, bound_field=field
    )


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
            trace.add_attempt(
                *slot, exc.kind, started, status=exc.status, retry_after=exc.retry_after
            )
            # Shared with every process before we move on: the next request skips this slot.
            await health.anote_failure(
                slot, kind=exc.kind, status=exc.status, retry_after=exc.retry_after
            )
            # A body cut before it was read has not reached the client either: fail over.
            if exc.retryable or exc.kind == FailureKind.CUT:
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
            return _upstream_error(exc).reply(_common_headers(call.request_id, balance))
        trace.add_attempt(*slot, AttemptOutcome.OK, started)
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
            **_common_headers(call.request_id, balance),
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
    return err.reply(_common_headers(call.request_id, balance))


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
            events: AsyncIterator[anthropic_adapter.SseData] = upstream.iter_sse(resp)
            if offering.wire_format == WireFormat.ANTHROPIC:
                events = anthropic_adapter.translate_events(events, model=call.plan.model.id)
            # Failover is only possible before the first byte reaches the client, so the
            # first event is read here, inside the attempt.
            first = await anext(events)
            first_chunk = jsonio.loads(first.data)
            if not isinstance(first_chunk, dict) or "error" in first_chunk:
                raise UpstreamFailure(
                    FailureKind.MALFORMED, "The upstream stream began with an error."
                )
        except StopAsyncIteration:
            failure = UpstreamFailure(FailureKind.CUT, "The upstream stream ended before any data.")
        except ValueError:
            failure = UpstreamFailure(
                FailureKind.MALFORMED, "The upstream stream began with invalid JSON."
            )
        except UpstreamFailure as exc:
            failure = exc
        else:
            trace.add_attempt(*slot, AttemptOutcome.OK, started)
            health.note_success(slot, first_byte_ms)
            headers = {
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
                **_common_headers(call.request_id, call.hold.balance_micros),
                **_served_headers(call, offering),
            }
            return Reply(200, headers, stream=_relay(call, offering, resp, events, first_chunk))
        if resp is not None:
            resp.close()
        trace.add_attempt(
            *slot, failure.kind, started, status=failure.status, retry_after=failure.retry_after
        )
        await health.anote_failure(
            slot, kind=failure.kind, status=failure.status, retry_after=failure.retry_after
        )
        if not failure.retryable and failure.kind != FailureKind.CUT:
            settlement = _settlement(
                call,
                status=GenerationStatus.CLIENT_ERROR,
                offering=offering,
                usage=Usage.from_openai(failure.usage),
                latency_ms=call.elapsed_ms(),
                error_code=_upstream_error(failure).code,
            )
            balance = await _settle(call, settlement)
            return _upstream_error(failure).reply(_common_headers(call.request_id, balance))
    return await _fail(call, failure)


def _stream_settlement(
    call: Call,
    offering: OfferingView,
    usage: Usage | None,
    relayed: int,
    *,
    status: str,
    latency_ms: int,
    error_code: str = "",
) -> Settlement:
    """A stream's settlement: the upstream's usage if it sent a block, else the estimate from
    the ``relayed`` pieces of output (never more than the client received)."""
    source = UsageSource.REPORTED
    if usage is None:
        usage, source = estimate_usage(call.req, relayed), UsageSource.ESTIMATED
    return _settlement(
        call,
        status=status,
        offering=offering,
        usage=usage,
        latency_ms=latency_ms,
        error_code=error_code,
        usage_source=source,
    )


class _HoldKeeper:
    """Renews a stream's hold every LOWROUTER_HOLD_RENEW_SECONDS while it is relayed, so the
    orphan reaper never frees the hold of a live stream (whose settlement would then no longer
    be bounded by it). A timer until it first fires: a stream shorter than the interval costs
    no task and no statement. A renewal in flight when the stream ends is left to finish: it
    touches a hold that settlement deletes, in either order harmlessly."""

    def __init__(self, hold_id: int) -> None:
        self.hold_id = hold_id
        self.loop = asyncio.get_running_loop()
        self.stopped = False
        self.renewing: asyncio.Task | None = None
        self.timer = self.loop.call_later(settings.LOWROUTER_HOLD_RENEW_SECONDS, self._fire)

    def _fire(self) -> None:
        if not self.stopped:
            self.renewing = self.loop.create_task(self._renew())

    async def _renew(self) -> None:
        try:
            if statements_on_loop():
                kept = await arenew_hold(self.hold_id)
            else:
                kept = await run_db(renew_hold, self.hold_id)
            if not kept:
                log.warning("hold %s was released while its stream ran", self.hold_id)
        except Exception as exc:  # the next turn tries again; the stream goes on regardless
            log.warning("hold renewal failed: %s", type(exc).__name__)
        if not self.stopped:
            self.timer = self.loop.call_later(settings.LOWROUTER_HOLD_RENEW_SECONDS, self._fire)

    def stop(self) -> None:
        self.stopped = True
        self.timer.cancel()


async def _relay(
    call: Call,
    offering: OfferingView,
    resp: upstream.Response,
    events: AsyncIterator[anthropic_adapter.SseData],
    first_chunk: dict,
) -> AsyncGenerator[bytes, None]:
    """Relay the upstream stream chunk by chunk, then the summary and ``[DONE]``.

    Finish chunks are held back to carry the ``lowrouter`` summary (a chunk whose ``choices``
    is non-empty, so ``chunk.choices[0]`` works in the naive SDK loop). The usage-only chunk
    (empty ``choices``) is forwarded only when the caller asked for it with include_usage.
    Pieces of output written to the client are counted, to bill a stream that ends without the
    upstream's usage block (``routing.usage_estimate``); the hold is renewed while it runs.
    """
    model_id = call.plan.model.id
    first_byte_ms = call.elapsed_ms()
    keeper = _HoldKeeper(call.hold.hold_id)
    usage: Usage | None = None
    relayed = 0
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
                        FailureKind.HTTP_ERROR, "The upstream reported an error mid-stream."
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
                    pieces = output_pieces(choices)
                    yield _sse(chunk)
                    # Counted once written: a client gone during the write never got it.
                    relayed += pieces
            try:
                event = await anext(events)
            except StopAsyncIteration:
                break
            if event.data == "[DONE]":
                break
            try:
                parsed = jsonio.loads(event.data)
            except ValueError:
                raise UpstreamFailure(
                    FailureKind.MALFORMED, "The upstream sent a malformed chunk."
                ) from None
            if not isinstance(parsed, dict):
                raise UpstreamFailure(
                    FailureKind.MALFORMED, "The upstream sent an unexpected chunk."
                )
            chunk = parsed
        if not finished:
            raise UpstreamFailure(FailureKind.CUT, "The upstream stream ended without finishing.")
        interrupted = False
    except UpstreamFailure as exc:
        interrupted = False
        failure = exc
        status, error_code = GenerationStatus.UPSTREAM_ERROR, "upstream_stream_failed"
    finally:
        # Closing the upstream response also cancels the upstream request when we stop early.
        resp.close()
        keeper.stop()
        if interrupted:
            # The client went away (task cancelled or generator closed). Settle what is known;
            # awaiting here is allowed while an async generator is being closed.
            call.plan.trace.end_last_attempt(AttemptOutcome.CLIENT_DISCONNECTED)
            await _settle(
                call,
                _stream_settlement(
                    call,
                    offering,
                    usage,
                    relayed,
                    status=GenerationStatus.CLIENT_ERROR,
                    latency_ms=first_byte_ms,
                    error_code="client_disconnected",
                ),
            )

    if failure is not None:
        # After the first byte there is no failover: end the stream with an explicit error
        # event (no [DONE]) and bill the usage reported, or else what was relayed. The slot
        # is still marked, so the next request avoids it.
        call.plan.trace.end_last_attempt(AttemptOutcome.FAILED_MID_STREAM, failure=failure.kind)
        await health.anote_failure(
            (offering.provider_id, offering.region),
            kind=failure.kind,
            status=failure.status,
            retry_after=failure.retry_after,
        )
        settlement = _stream_settlement(
            call,
            offering,
            usage,
            relayed,
            status=status,
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

    settlement = _stream_settlement(
        call, offering, usage, relayed, status=GenerationStatus.OK, latency_ms=first_byte_ms
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
