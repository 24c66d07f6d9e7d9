"""The chat completion endpoint served straight from ASGI, ahead of Django's request handling.

Django's ASGI handler gives every request its own thread-sensitive context: a fresh worker
thread is started and joined per request for the request signals and ``response.close()``, and
the whole middleware chain runs, none of which this endpoint needs (no session, cookie, CSRF,
user or template). Measured on the target machine that machinery cost more CPU than the
gateway's own work, so ``POST /api/v1/chat/completions`` is answered here: read the body, call
``routing.gateway.chat_completion``, and write its response. ``POST /api/v1/anthropic/v1/messages``
(``routing.anthropic_inbound``) is served the same way. This is the gateway's only entry: every
other request, including other methods on these paths (a 405 from the Django views), goes to
Django.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from routing import anthropic_inbound, gateway
from routing.errors import ApiError, bad_host
from routing.replies import LastChunk, Reply
from routing.validation import body_too_large

log = logging.getLogger(__name__)

PATH = "/api/v1/chat/completions"
# Served here too: the same request path, spoken in Anthropic's Messages format.
PATHS = frozenset({PATH, anthropic_inbound.PATH})
Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class Disconnected(Exception):
    pass


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None when it is larger than ``limit``."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        body = message.get("body", b"")
        size += len(body)
        if size > limit:
            return None
        chunks.append(body)
        if not message.get("more_body", False):
            return b"".join(chunks)


class _Exchange:
    """What the disconnect watcher needs to know about the response in progress."""

    streaming = False  # the head is sent: from here a disconnect cancels the relay
    finished = False  # the relay is over: a disconnect now changes nothing
    client_left = False  # the relay was cancelled because the client went away


async def _send_response(reply: Reply, send: Send, exchange: _Exchange | None = None) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
    if reply.stream is None:
        headers.append((b"content-length", b"%d" % len(reply.body)))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})
        return
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    if exchange is not None:
        exchange.streaming = True
    ended = False
    async with contextlib.aclosing(reply.stream) as chunks:
        async for chunk in chunks:
            # Each chunk is one write to the client, sent as it comes (no coalescing); the
            # stream's last one carries the end of the body with it.
            ended = type(chunk) is LastChunk
            await send({"type": "http.response.body", "body": chunk, "more_body": not ended})
    if not ended:
        await send({"type": "http.response.body", "body": b""})


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _answer(scope: Scope, raw: bytes | None, request_id: str) -> Reply:
    messages = scope["path"] == anthropic_inbound.PATH
    ids = {"X-Request-ID": request_id}
    if raw is None:
        limit = settings.LOWROUTER_MAX_BODY_BYTES
        return anthropic_inbound.api_error_reply(scope["path"], body_too_large(limit), ids)
    headers = scope["headers"]
    try:
        if messages:
            return await anthropic_inbound.create_message(
                gateway.chat_completion,
                authorization=anthropic_inbound.authorization_from(
                    _header(headers, b"authorization"), _header(headers, b"x-api-key")
                ),
                raw_body=raw,
                request_id=request_id,
                region_header=_header(headers, b"x-lowrouter-region"),
            )
        return await gateway.chat_completion(
            authorization=_header(headers, b"authorization"),
            raw_body=raw,
            request_id=request_id,
            region_header=_header(headers, b"x-lowrouter-region"),
        )
    except Exception as exc:
        # Never a page or a trace; the log names the type only (messages can quote input).
        log.error("unhandled %s on %s", type(exc).__name__, scope["path"])
        return anthropic_inbound.api_error_reply(
            scope["path"],
            ApiError(
                500, "internal_error", "The gateway hit an unexpected error; nothing was charged."
            ),
            ids,
        )


async def _relay_watching(reply: Reply, send: Send, receive: Receive) -> None:
    """Send a stream while watching for the client leaving: once the relay has started, a
    disconnect cancels it, which settles what the upstream reported and closes the upstream
    request (the relay's own clean-up). Before it has started it cannot be cancelled without
    skipping that clean-up, so it runs on, into a closed connection.

    The relay runs in this task and the watcher in a task of its own, which cancels this one:
    the first chunk goes out without waiting for a new task's first turn of the event loop (a
    wait that grows with the loop's load, and every stream's first byte paid it)."""
    exchange = _Exchange()
    relaying = asyncio.current_task()
    assert relaying is not None  # the server calls the application in a task

    def on_disconnect(watch: asyncio.Task) -> None:
        if watch.cancelled() or watch.exception() is not None:
            return
        if exchange.streaming and not exchange.finished:
            exchange.client_left = True
            relaying.cancel()

    watch = asyncio.create_task(_wait_for_disconnect(receive))
    watch.add_done_callback(on_disconnect)
    try:
        await _send_response(reply, send, exchange)
    except asyncio.CancelledError:
        # Ours (the client left) ends here; any other cancellation (shutdown) goes on.
        if not exchange.client_left or relaying.uncancel() > 0:
            raise
    except Exception as exc:
        log.error("unhandled %s on %s", type(exc).__name__, PATH)
    finally:
        exchange.finished = True
        watch.cancel()


class ChatEndpoint:
    """ASGI app: the chat completion endpoint here, everything else to ``django_app``."""

    def __init__(self, django_app: Callable) -> None:
        self.django_app = django_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (scope["type"] == "http" and scope["path"] in PATHS and scope["method"] == "POST"):
            await self.django_app(scope, receive, send)
            return
        headers = scope["headers"]
        request_id = gateway.request_id_from(_header(headers, b"x-request-id"))
        host = _header(headers, b"host") or ""
        if not validate_host(split_domain_port(host)[0], settings.ALLOWED_HOSTS):
            # The refusal Django gives a request for a host it does not serve, as an API answer
            # (routing.middleware gives the same on the API's other paths).
            refused = anthropic_inbound.api_error_reply(scope["path"], bad_host(), {})
            await _send_response(refused, send)
            return
        limit = settings.LOWROUTER_MAX_BODY_BYTES
        try:
            declared = int(_header(headers, b"content-length") or 0)
        except ValueError:
            declared = 0
        try:
            raw = None if declared > limit else await _read_body(receive, limit)
        except Disconnected:
            return
        # A plain request runs to its end even if its client leaves, so the upstream's usage is
        # recorded and billed (the answer goes nowhere); only a stream is watched, once it is
        # being relayed.
        reply = await _answer(scope, raw, request_id)
        if reply.stream is not None:
            await _relay_watching(reply, send, receive)
        else:
            await _send_response(reply, send)


__all__ = ["ChatEndpoint"]
