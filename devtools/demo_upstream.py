"""The demo upstream: a small HTTP server that speaks the provider wire formats.

It answers OpenAI-compatible chat completions (JSON and SSE) and Anthropic Messages
(JSON and SSE) with a fixed demo sentence. It is NOT a language model: the text is generated
deterministically from the request's limits, so that the gateway works without credentials
or internet (`make run` serves it as the `demo` provider), and so that tests and benchmarks
have a real server, with fault injection, to talk to.

Nothing here imports Django: benchmarks and the management command run it on its own.
Requests are never logged and records hold metadata only, never message content.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from itertools import cycle, islice
from typing import Any

from aiohttp import web


class Fault(StrEnum):
    NONE = "none"
    HTTP_ERROR = "http_error"
    RATE_LIMIT = "rate_limit"
    TIMEOUT = "timeout"
    CUT_STREAM = "cut_stream"
    HANG_STREAM = "hang_stream"
    MALFORMED_CHUNK = "malformed_chunk"
    CONNECTION_RESET = "connection_reset"


class BoundObeyed(StrEnum):
    """Which output-token bound the server obeys. Real OpenAI-compatible servers differ: most
    read ``max_tokens``, OpenAI's reasoning models only ``max_completion_tokens``, and a broken
    one may ignore both. ``both`` takes ``max_completion_tokens`` first, as OpenAI does."""

    BOTH = "both"
    MAX_TOKENS = "max_tokens"
    MAX_COMPLETION_TOKENS = "max_completion_tokens"
    NONE = "none"


BOUND_FIELDS = ("max_completion_tokens", "max_tokens")

# Outcomes recorded besides the fault names.
OUTCOME_OK = "ok"
OUTCOME_CANCELLED = "cancelled"
OUTCOME_INVALID = "invalid_request"

DEMO_SENTENCE = (
    "This is the LowRouter demo provider. It is not a language model: it repeats this "
    "fixed sentence, cut to the requested length, so every request gets the same answer."
)
DEMO_WORDS = DEMO_SENTENCE.split()
DEMO_MODELS = ("demo-small", "demo-large")
# "Forever" for timeout and hang faults: long enough that the client always gives up first.
HANG_SECONDS = 3600.0
# Bound the records so a long-running `make run` demo does not grow without limit.
MAX_RECORDS = 10_000


@dataclass
class DemoConfig:
    """Behaviour of the server; mutable, read afresh on every request."""

    latency_ms: float = 0.0
    chunk_interval_ms: float = 0.0
    completion_tokens: int = 12
    fault: str = Fault.NONE
    fault_status: int = 500
    retry_after: int = 1
    fault_after_chunks: int = 2
    fault_count: int | None = None
    usage_on_error: bool = False
    cached_tokens: int = 0
    # False: an OpenAI-format stream never carries a usage block, even when asked for one (an
    # upstream that ignores include_usage). Anthropic streams always carry theirs.
    stream_usage: bool = True
    obeys_bound: str = BoundObeyed.BOTH


@dataclass
class RequestRecord:
    """What the server saw of one request: metadata only, never message content."""

    path: str
    model: str
    stream: bool
    include_usage: bool
    max_tokens: int | None
    status: int  # 0 when no status line was ever sent
    outcome: str  # "ok" | a fault name | "cancelled" | "invalid_request"
    headers_authorization: str | None
    headers_x_api_key: str | None = None
    fault: str = Fault.NONE  # the fault injected, also when the outcome is "cancelled"
    # Stream content events (one per token) written before the stream ended or was cancelled.
    content_events: int = 0
    # Every bound field the request carried ({"max_tokens": 20}) and the choices it asked for.
    bounds: dict[str, int] | None = None
    n: int = 1


def update_config(config: DemoConfig, changes: dict[str, Any]) -> None:
    """Apply a JSON object of field changes, all or nothing; raise ValueError on bad input."""
    known = {f.name: f for f in fields(DemoConfig)}
    staged: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in known:
            raise ValueError(f"unknown config field {name!r}")
        staged[name] = _coerce_config_value(name, value)
    for name, value in staged.items():
        setattr(config, name, value)


def _coerce_config_value(name: str, value: Any) -> Any:
    if name == "fault":
        if value not in set(Fault):
            raise ValueError(f"fault must be one of {', '.join(Fault)}")
        return Fault(value)
    if name == "fault_count" and value is None:
        return None
    if name == "obeys_bound":
        if value not in set(BoundObeyed):
            raise ValueError(f"obeys_bound must be one of {', '.join(BoundObeyed)}")
        return BoundObeyed(value)
    if name in ("usage_on_error", "stream_usage"):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be a boolean")
        return value
    if name in ("latency_ms", "chunk_interval_ms"):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{name} must be a non-negative number")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer")
    if name == "fault_status" and not 400 <= value <= 599:
        raise ValueError("fault_status must be a 4xx or 5xx status")
    return value


def take_fault(config: DemoConfig) -> Fault:
    """The fault for this request, counting down `fault_count` when it is limited."""
    fault = Fault(config.fault)
    if fault is Fault.NONE:
        return fault
    if config.fault_count is None:
        return fault
    if config.fault_count <= 0:
        return Fault.NONE
    config.fault_count -= 1
    return fault


def count_words(content: Any) -> int:
    """Words in a message content: a string, or a list of parts whose text parts count."""
    if isinstance(content, str):
        return len(content.split())
    if isinstance(content, list):
        return sum(
            len(part["text"].split())
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return 0


def count_prompt_tokens(messages: list[Any], system: Any = None) -> int:
    """The demo tokenizer: one token per word, plus 4 per message for the framing."""
    total = count_words(system)
    for message in messages:
        total += 4
        if isinstance(message, dict):
            total += count_words(message.get("content"))
    return total


@dataclass
class Generation:
    prompt_tokens: int
    words: list[str]
    truncated: bool  # cut by max_tokens rather than ending on its own
    cached_tokens: int
    choices: int = 1  # "n": the same text once per choice, each one billed

    @property
    def completion_tokens(self) -> int:
        return len(self.words) * self.choices

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def pieces(self) -> list[str]:
        """One token per piece; joined they give `text` exactly."""
        return [word if i == 0 else " " + word for i, word in enumerate(self.words)]


def obeyed_bound(config: DemoConfig, bounds: dict[str, int]) -> int | None:
    """The bound this server takes from the request's bound fields, per ``obeys_bound``."""
    obeys = BoundObeyed(config.obeys_bound)
    if obeys is BoundObeyed.NONE:
        return None
    names = BOUND_FIELDS if obeys is BoundObeyed.BOTH else (obeys.value,)
    return next((bounds[name] for name in names if name in bounds), None)


def generate_text(
    config: DemoConfig, prompt_tokens: int, max_tokens: int | None, choices: int = 1
) -> Generation:
    wanted = config.completion_tokens
    limit = wanted if max_tokens is None else min(wanted, max_tokens)
    return Generation(
        prompt_tokens=prompt_tokens,
        words=list(islice(cycle(DEMO_WORDS), limit)),
        truncated=limit < wanted,
        cached_tokens=min(config.cached_tokens, prompt_tokens),
        choices=choices,
    )


@dataclass
class ParsedRequest:
    model: str
    stream: bool
    include_usage: bool
    max_tokens: int | None
    prompt_tokens: int
    bounds: dict[str, int] | None = None
    n: int = 1


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def _read_bounds(body: dict[str, Any], *names: str) -> dict[str, int]:
    bounds = {}
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadRequest(f"{name} must be a positive integer", name)
        bounds[name] = value
    return bounds


def _read_n(body: dict[str, Any]) -> int:
    value = body.get("n", 1)
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 128:
        raise BadRequest("n must be an integer between 1 and 128", "n")
    return value


def _read_common(body: dict[str, Any]) -> tuple[str, list[Any], bool]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model is required", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty array", "messages")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("stream must be a boolean", "stream")
    return model, messages, stream


def _sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class OpenAIDialect:
    """OpenAI chat completions: request validation, bodies and SSE events."""

    malformed_json_body = b'{"id": "chatcmpl-demo", "choices": [{"message": {not json'
    malformed_event = b"data: {not json\n\n"

    def parse(self, body: dict[str, Any]) -> ParsedRequest:
        model, messages, stream = _read_common(body)
        options = body.get("stream_options") or {}
        include_usage = bool(stream and isinstance(options, dict) and options.get("include_usage"))
        bounds = _read_bounds(body, *BOUND_FIELDS)
        return ParsedRequest(
            model=model,
            stream=stream,
            include_usage=include_usage,
            max_tokens=next(iter(bounds.values()), None),
            prompt_tokens=count_prompt_tokens(messages),
            bounds=bounds,
            n=_read_n(body),
        )

    def error_body(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> dict[str, Any]:
        kind = "server_error" if status >= 500 else "invalid_request_error"
        if status == 429:
            kind = "rate_limit_error"
        return {"error": {"message": message, "type": kind, "code": code, "param": param}}

    def usage(self, gen: Generation) -> dict[str, Any]:
        return {
            "prompt_tokens": gen.prompt_tokens,
            "completion_tokens": gen.completion_tokens,
            "total_tokens": gen.prompt_tokens + gen.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": gen.cached_tokens},
        }

    def completion_body(self, req: ParsedRequest, gen: Generation) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.model,
            "choices": [
                {
                    "index": index,
                    "message": {"role": "assistant", "content": gen.text},
                    "logprobs": None,
                    "finish_reason": "length" if gen.truncated else "stop",
                }
                for index in range(gen.choices)
            ],
            "usage": self.usage(gen),
        }

    def stream_events(self, req: ParsedRequest, gen: Generation) -> _EventPlan:
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": req.model,
        }
        # With include_usage the real API sends "usage": null on every chunk but the last.
        extra = {"usage": None} if req.include_usage else {}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            # With n > 1 every chunk carries each choice's delta (all choices say the same).
            choices = [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
                for index in range(gen.choices)
            ]
            return _sse({**base, "choices": choices, **extra})

        trailer = [chunk({}, "length" if gen.truncated else "stop")]
        if req.include_usage:
            trailer.append(_sse({**base, "choices": [], "usage": self.usage(gen)}))
        trailer.append(b"data: [DONE]\n\n")
        return _EventPlan(
            prelude=[chunk({"role": "assistant", "content": ""})],
            content=[chunk({"content": piece}) for piece in gen.pieces()],
            trailer=trailer,
        )


_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class AnthropicDialect:
    """Anthropic Messages: request validation, bodies and SSE events."""

    malformed_json_body = b'{"id": "msg_demo", "type": "message", "content": [{not json'
    malformed_event = b"event: content_block_delta\ndata: {not json\n\n"

    def parse(self, body: dict[str, Any]) -> ParsedRequest:
        model, messages, stream = _read_common(body)
        bounds = _read_bounds(body, "max_tokens")
        if not bounds:
            raise BadRequest("max_tokens is required", "max_tokens")
        return ParsedRequest(
            model=model,
            stream=stream,
            include_usage=True,  # Anthropic always reports usage
            max_tokens=bounds["max_tokens"],
            prompt_tokens=count_prompt_tokens(messages, body.get("system")),
            bounds=bounds,
        )

    def error_body(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> dict[str, Any]:
        fallback = "api_error" if status >= 500 else "invalid_request_error"
        kind = _ANTHROPIC_ERROR_TYPES.get(status, fallback)
        return {"type": "error", "error": {"type": kind, "message": message}}

    def usage(self, gen: Generation) -> dict[str, Any]:
        # Anthropic counts cache reads apart from input_tokens.
        return {
            "input_tokens": gen.prompt_tokens - gen.cached_tokens,
            "output_tokens": gen.completion_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": gen.cached_tokens,
        }

    def _message(self, req: ParsedRequest, gen: Generation | None, msg_id: str) -> dict[str, Any]:
        return {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": req.model,
            "content": [{"type": "text", "text": gen.text}] if gen else [],
            "stop_reason": ("max_tokens" if gen.truncated else "end_turn") if gen else None,
            "stop_sequence": None,
        }

    def completion_body(self, req: ParsedRequest, gen: Generation) -> dict[str, Any]:
        body = self._message(req, gen, f"msg_{uuid.uuid4().hex}")
        return {**body, "usage": self.usage(gen)}

    def stream_events(self, req: ParsedRequest, gen: Generation) -> _EventPlan:
        start = self._message(req, None, f"msg_{uuid.uuid4().hex}")
        start["usage"] = {**self.usage(gen), "output_tokens": 0}
        stop_reason = "max_tokens" if gen.truncated else "end_turn"
        return _EventPlan(
            prelude=[
                _sse({"type": "message_start", "message": start}, "message_start"),
                _sse(
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                    "content_block_start",
                ),
            ],
            content=[
                _sse(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                    "content_block_delta",
                )
                for piece in gen.pieces()
            ],
            trailer=[
                _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
                _sse(
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                        "usage": {"output_tokens": gen.completion_tokens},
                    },
                    "message_delta",
                ),
                _sse({"type": "message_stop"}, "message_stop"),
            ],
        )


Dialect = OpenAIDialect | AnthropicDialect


@dataclass
class _EventPlan:
    prelude: list[bytes]
    content: list[bytes]  # one event per generated token; faults count these
    trailer: list[bytes]


@dataclass
class _Exchange:
    """One request in flight; writes its record once (a provisional one may be corrected)."""

    records: list[RequestRecord]
    path: str
    authorization: str | None
    x_api_key: str | None
    req: ParsedRequest | None = None
    fault: Fault = Fault.NONE
    status: int = 0
    response: web.StreamResponse | None = None
    record: RequestRecord | None = None
    provisional: bool = False
    content_events: int = 0

    def finish(self, outcome: str, status: int | None = None, provisional: bool = False) -> None:
        if status is not None:
            self.status = status
        if self.record is not None:
            if self.provisional:
                self.record.outcome, self.record.status = str(outcome), self.status
                self.record.content_events = self.content_events
                self.provisional = provisional
            return
        self.provisional = provisional
        req = self.req
        self.record = RequestRecord(
            path=self.path,
            model=req.model if req else "",
            stream=req.stream if req else False,
            include_usage=req.include_usage if req else False,
            max_tokens=req.max_tokens if req else None,
            status=self.status,
            outcome=str(outcome),
            headers_authorization=self.authorization,
            headers_x_api_key=self.x_api_key,
            fault=str(self.fault),
            content_events=self.content_events,
            bounds=dict(req.bounds or {}) if req else None,
            n=req.n if req else 1,
        )
        self.records.append(self.record)
        if len(self.records) > MAX_RECORDS:
            del self.records[: len(self.records) - MAX_RECORDS]


_CONFIG_KEY = web.AppKey("demo_config", DemoConfig)
_RECORDS_KEY = web.AppKey("demo_records", list)
_SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


async def _sleep_ms(ms: float) -> None:
    if ms > 0:
        await asyncio.sleep(ms / 1000)


def _drop_connection(request: web.Request, exchange: _Exchange, outcome: str) -> None:
    """Record, then abort the TCP connection (RST) so the client sees a broken response."""
    exchange.finish(outcome)
    if request.transport is not None:
        request.transport.abort()


async def _read_body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def _json(
    data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=json.dumps)


async def _respond_fault(
    request: web.Request, exchange: _Exchange, dialect: Dialect, config: DemoConfig
) -> web.StreamResponse | None:
    """Answer the faults that strike before any normal output; None when there is none."""
    req = exchange.req
    assert req is not None
    fault = exchange.fault
    if fault is Fault.HTTP_ERROR:
        status = config.fault_status
        body = dialect.error_body(
            status, f"demo upstream: injected HTTP {status}", code="demo_fault"
        )
        if config.usage_on_error and status < 500:
            # An upstream 4xx that still consumed (and billed) the prompt.
            consumed = Generation(req.prompt_tokens, [], False, 0)
            body["usage"] = dialect.usage(consumed)
        exchange.finish(fault, status)
        return _json(body, status)
    if fault is Fault.RATE_LIMIT:
        body = dialect.error_body(
            429, "demo upstream: injected rate limit", code="rate_limit_exceeded"
        )
        exchange.finish(fault, 429)
        return _json(body, 429, {"Retry-After": str(config.retry_after)})
    if fault is Fault.CONNECTION_RESET:
        _drop_connection(request, exchange, fault)
        return web.Response()  # never written: the transport is gone
    if fault is Fault.TIMEOUT or (fault is Fault.HANG_STREAM and not req.stream):
        await asyncio.sleep(HANG_SECONDS)  # the client gives up long before this ends
        exchange.finish(fault, 504)
        return _json(dialect.error_body(504, "demo upstream: injected timeout"), 504)
    return None


async def _respond_json(
    request: web.Request, exchange: _Exchange, dialect: Dialect, gen: Generation
) -> web.StreamResponse:
    req = exchange.req
    assert req is not None
    fault = exchange.fault
    if fault is Fault.MALFORMED_CHUNK:
        exchange.finish(fault, 200)
        return web.Response(body=dialect.malformed_json_body, content_type="application/json")
    if fault is Fault.CUT_STREAM:
        # Promise a body, send only the headers, then drop the connection.
        payload = json.dumps(dialect.completion_body(req, gen)).encode()
        resp = web.StreamResponse(
            headers={"Content-Type": "application/json", "Content-Length": str(len(payload))}
        )
        exchange.response = resp
        await resp.prepare(request)
        exchange.status = 200
        _drop_connection(request, exchange, fault)
        return resp
    exchange.finish(OUTCOME_OK, 200)
    return _json(dialect.completion_body(req, gen))


async def _respond_stream(
    request: web.Request,
    exchange: _Exchange,
    dialect: Dialect,
    gen: Generation,
    config: DemoConfig,
) -> web.StreamResponse:
    req = exchange.req
    assert req is not None
    plan = dialect.stream_events(
        req if config.stream_usage else replace(req, include_usage=False), gen
    )
    fault_at = min(config.fault_after_chunks, len(plan.content))
    first_content, end_of_content = len(plan.prelude), len(plan.prelude) + len(plan.content) + 1
    # None marks where a stream fault strikes: after `fault_at` content events.
    events: list[bytes | None] = [
        *plan.prelude,
        *plan.content[:fault_at],
        None,
        *plan.content[fault_at:],
        *plan.trailer,
    ]
    resp = web.StreamResponse(headers=_SSE_HEADERS)
    exchange.response = resp
    await resp.prepare(request)
    exchange.status = 200
    outcome = exchange.fault if exchange.fault is Fault.MALFORMED_CHUNK else OUTCOME_OK
    for index, event in enumerate(events):
        if event is None:
            if exchange.fault is Fault.CUT_STREAM:
                _drop_connection(request, exchange, exchange.fault)
                return resp
            if exchange.fault is Fault.HANG_STREAM:
                await asyncio.sleep(HANG_SECONDS)
            if exchange.fault is not Fault.MALFORMED_CHUNK:
                continue
            event = dialect.malformed_event
        if index:
            await _sleep_ms(config.chunk_interval_ms)
        if index == len(events) - 1:
            # Record before the last event leaves, so a client that has read it finds the
            # record; a failure of this write still turns it into "cancelled".
            exchange.finish(outcome, provisional=True)
        # One write per event: aiohttp sends it at once, so the chunk cadence is kept.
        await resp.write(event)
        if first_content <= index < end_of_content and event is not dialect.malformed_event:
            exchange.content_events += 1
    await resp.write_eof()
    exchange.finish(outcome)
    return resp


async def _serve(request: web.Request, dialect: Dialect) -> web.StreamResponse:
    config = request.app[_CONFIG_KEY]
    exchange = _Exchange(
        records=request.app[_RECORDS_KEY],
        path=request.path,
        authorization=request.headers.get("Authorization"),
        x_api_key=request.headers.get("x-api-key"),
    )
    try:
        try:
            exchange.req = dialect.parse(await _read_body(request))
        except BadRequest as exc:
            exchange.finish(OUTCOME_INVALID, 400)
            return _json(dialect.error_body(400, exc.message, param=exc.param), 400)
        await _sleep_ms(config.latency_ms)
        exchange.fault = take_fault(config)
        early = await _respond_fault(request, exchange, dialect, config)
        if early is not None:
            return early
        req = exchange.req
        gen = generate_text(
            config, req.prompt_tokens, obeyed_bound(config, req.bounds or {}), req.n
        )
        if exchange.req.stream:
            return await _respond_stream(request, exchange, dialect, gen, config)
        return await _respond_json(request, exchange, dialect, gen)
    except asyncio.CancelledError:
        exchange.finish(OUTCOME_CANCELLED)
        raise
    except ConnectionResetError:
        exchange.finish(OUTCOME_CANCELLED)
        if exchange.response is None:
            raise
        # aiohttp treats a failed write_eof on this response as a quiet client disconnect.
        return exchange.response


_OPENAI = OpenAIDialect()
_ANTHROPIC = AnthropicDialect()


async def handle_chat_completions(request: web.Request) -> web.StreamResponse:
    return await _serve(request, _OPENAI)


async def handle_messages(request: web.Request) -> web.StreamResponse:
    return await _serve(request, _ANTHROPIC)


async def handle_models(request: web.Request) -> web.Response:
    data = [
        {"id": model_id, "object": "model", "created": 0, "owned_by": "lowrouter-demo"}
        for model_id in DEMO_MODELS
    ]
    return _json({"object": "list", "data": data})


async def handle_healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok", "demo": True})


async def handle_get_config(request: web.Request) -> web.Response:
    return _json(asdict(request.app[_CONFIG_KEY]))


async def handle_post_config(request: web.Request) -> web.Response:
    config = request.app[_CONFIG_KEY]
    try:
        changes = await _read_body(request)
        update_config(config, changes)
    except (BadRequest, ValueError) as exc:
        return _json(_OPENAI.error_body(400, str(exc)), 400)
    return _json(asdict(config))


async def handle_get_records(request: web.Request) -> web.Response:
    records = request.app[_RECORDS_KEY]
    return _json({"records": [asdict(record) for record in records]})


async def handle_delete_records(request: web.Request) -> web.Response:
    request.app[_RECORDS_KEY].clear()
    return _json({"records": []})


def build_app(config: DemoConfig, records: list[RequestRecord] | None = None) -> web.Application:
    app = web.Application()
    app[_CONFIG_KEY] = config
    app[_RECORDS_KEY] = records if records is not None else []
    app.router.add_post("/v1/chat/completions", handle_chat_completions)
    app.router.add_post("/v1/messages", handle_messages)
    app.router.add_get("/v1/models", handle_models)
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/_demo/config", handle_get_config)
    app.router.add_post("/_demo/config", handle_post_config)
    app.router.add_get("/_demo/records", handle_get_records)
    app.router.add_delete("/_demo/records", handle_delete_records)
    return app


# Handlers must be cancelled when the client goes away, so hung faults end and
# cancellations are recorded; aiohttp leaves that off by default.
RUNNER_OPTIONS: dict[str, Any] = {"handler_cancellation": True, "access_log": None}


class DemoUpstream:
    """Runs the app on 127.0.0.1 in a background thread with its own event loop."""

    def __init__(
        self, config: DemoConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config if config is not None else DemoConfig()
        self.records: list[RequestRecord] = []
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def start(self) -> DemoUpstream:
        started = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, args=(started, failure), name="demo-upstream", daemon=True
        )
        self._thread.start()
        started.wait()
        if failure:
            self._thread.join()
            raise failure[0]
        return self

    def _run(self, started: threading.Event, failure: list[BaseException]) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # surfaced to start() in the calling thread
            failure.append(exc)
            started.set()
            loop.close()
            return
        started.set()
        loop.run_forever()
        loop.close()

    async def _serve(self) -> None:
        # A short shutdown grace: hung faults would otherwise hold stop() for a minute.
        self._runner = web.AppRunner(
            build_app(self.config, self.records), shutdown_timeout=0.5, **RUNNER_OPTIONS
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        loop, thread, runner = self._loop, self._thread, self._runner
        if loop is None or thread is None:
            return
        if runner is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> DemoUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def wait_for_outcome(self, outcome: str, timeout: float = 5.0) -> RequestRecord:
        """The first record with this outcome, polling until one appears."""
        deadline = time.monotonic() + timeout
        while True:
            for record in list(self.records):
                if record.outcome == outcome:
                    return record
            if time.monotonic() >= deadline:
                seen = [record.outcome for record in self.records]
                raise TimeoutError(f"no {outcome!r} record within {timeout}s; saw {seen}")
            time.sleep(0.01)


def run_demo_upstream(
    config: DemoConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8001,
    on_start: Callable[[str], None] | None = None,
) -> None:
    """Serve the demo upstream in the foreground until interrupted (uvloop when installed)."""
    try:
        import uvloop
    except ImportError:
        loop = asyncio.new_event_loop()
    else:
        loop = uvloop.new_event_loop()
    web.run_app(
        build_app(config),
        host=host,
        port=port,
        loop=loop,
        shutdown_timeout=1.0,
        print=on_start,
        **RUNNER_OPTIONS,
    )


__all__ = [
    "DEMO_MODELS",
    "BoundObeyed",
    "DemoConfig",
    "DemoUpstream",
    "Fault",
    "RequestRecord",
    "build_app",
    "run_demo_upstream",
    "update_config",
]
