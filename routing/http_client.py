"""A lean HTTP/1.1 client for the gateway's calls to upstream providers.

Why it exists: every gateway request makes one upstream call, and a streamed one receives a
block per token. aiohttp's client measured about 0.35 ms of CPU per call on the 2-core target
machine before any byte was read, plus a timer rescheduled and several stream-reader layers per
block. This module does only what the gateway needs, on an ``asyncio.Protocol`` (uvloop or plain
asyncio) with httptools' C parser, so a call costs a few Python calls and one future per wait.

What it does:

- ``post(url, body, headers, ...)`` sends one POST and returns a ``Response`` as soon as the
  response headers arrived (any status; the caller decides what an error is). The body is then
  read with ``read()`` (all of it) or ``read_chunk()`` (whatever has arrived, one await per
  arriving block).
- Keep-alive: one pool per event loop, keyed by (scheme, host, port), at most
  ``MAX_IDLE_PER_KEY`` idle connections per key, reused most recent first and dropped after
  ``KEEPALIVE_EXPIRY`` seconds idle. A pooled connection the peer closed is dropped as soon as
  the loop notices (EOF or reset), never reused. A connection goes back to the pool when its
  response has fully arrived (Content-Length or chunked framing, no ``Connection: close``),
  even if the caller has not read the buffered body yet; anything else closes it.
- https with ``ssl.create_default_context()`` (certificate and host name checked, SNI), http in
  the clear; a port and a path prefix in the URL are kept. Host names are resolved with the
  loop's ``getaddrinfo`` and cached for ``DNS_TTL`` seconds.
- Response bodies framed by Content-Length, chunked encoding or the end of the connection. We
  ask for ``Accept-Encoding: identity``; a gzip or deflate body is still inflated, bounded per
  read; any other content coding fails the read with ``MalformedResponse``.
- Timeouts: connecting (TCP and TLS) within ``connect_timeout``; the response headers within
  ``first_byte_timeout`` of the call (connecting included); then at most ``idle_timeout``
  between two body bytes while the reader waits for more. The idle check is one timer per
  stream that re-arms itself from the last arrival time, not a timer per block.
- Back-pressure: once ``HIGH_WATER`` bytes of body wait unread, the socket stops being read
  (TCP then slows the upstream down) until the reader takes them.
- ``Response.close()`` abandons a response: its connection is aborted, so the upstream sees
  the request cancelled. ``release()`` after a complete read is free (the connection already
  went back to the pool); before, it is ``close()``.

What it does not do: methods other than POST, request bodies other than one bytes object,
proxies (``HTTP(S)_PROXY`` is ignored), HTTP/2, redirects (a 3xx is returned as it is),
cookies, credentials in the URL, ``Expect: 100-continue``, brotli or zstd bodies, trailers.
It never retries: a POST is not replayed, not even when a pooled connection turns out to have
been closed by the peer at the moment it was reused (the caller's failover decides). It logs
nothing, so no request or response content can end up in a log.

A small library with a fence around it: it imports the standard library and httptools, none of
LowRouter's apps, and ``__all__`` is its whole interface. Every behaviour above is tested in
``tests/lib/test_http_client_contract.py``, on asyncio and uvloop.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
import time
import zlib
from collections.abc import Mapping
from urllib.parse import urlsplit

import httptools

__all__ = [
    "HIGH_WATER",
    "KEEPALIVE_EXPIRY",
    "MAX_IDLE_PER_KEY",
    "ClientError",
    "ConnectFailed",
    "ConnectionCut",
    "MalformedResponse",
    "Response",
    "Timeout",
    "close_pools",
    "pool_loops",
    "post",
]

# Body bytes buffered unread before the socket stops being read. A read takes everything
# buffered, so reading resumes at the next read (the low-water mark is zero).
HIGH_WATER = 256 * 1024
MAX_IDLE_PER_KEY = 100
# Seconds an idle pooled connection is kept (servers close idle ones after 5 s to a few minutes).
KEEPALIVE_EXPIRY = 15.0
DNS_TTL = 300.0
# A compressed block is inflated at most this much per read; the rest waits for the next read.
MAX_INFLATE = 1024 * 1024

_monotonic = time.monotonic


class ClientError(Exception):
    """Anything that went wrong with an upstream HTTP exchange."""


class ConnectFailed(ClientError):
    """No response could be had: DNS, refused, TLS, or the connection closed before headers."""


class Timeout(ClientError, TimeoutError):
    """Connecting, the response headers or the next body bytes took too long."""


class ConnectionCut(ClientError):
    """The connection ended (EOF or reset) before the response body was complete."""


class MalformedResponse(ClientError):
    """The peer did not speak HTTP/1.1 as expected, or sent a body we cannot decode."""


# --- URLs, names, TLS ---------------------------------------------------------------------


class _Target:
    """What a URL means for a request: pool key, address, and the request line with Host."""

    __slots__ = ("host", "is_ip", "key", "port", "prefix", "tls")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        try:
            port = parts.port
        except ValueError as exc:
            raise ConnectFailed(f"Invalid port in upstream URL: {exc}") from None
        host = parts.hostname
        if scheme not in ("http", "https") or not host:
            raise ConnectFailed("The upstream URL must be http:// or https:// with a host.")
        if not host.isascii():
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                raise ConnectFailed("The upstream URL has an invalid host name.") from None
        self.tls = scheme == "https"
        default = 443 if self.tls else 80
        self.host = host
        self.port = port or default
        self.key = (scheme, host, self.port)
        try:
            ipaddress.ip_address(host)
            self.is_ip = True
        except ValueError:
            self.is_ip = False
        authority = f"[{host}]" if ":" in host else host
        if self.port != default:
            authority += f":{self.port}"
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        if any(c in path or c in authority for c in " \r\n"):
            raise ConnectFailed("The upstream URL contains whitespace.")
        self.prefix = f"POST {path} HTTP/1.1\r\nHost: {authority}\r\n"


@functools.lru_cache(maxsize=512)
def _target(url: str) -> _Target:
    # Upstream URLs are a few base URLs times a few paths: parse each once.
    return _Target(url)


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


_dns: dict[tuple[str, int], tuple[float, list[tuple[int, str]]]] = {}


async def _resolve(loop: asyncio.AbstractEventLoop, target: _Target) -> list[tuple[int, str]]:
    if target.is_ip:
        return [(0, target.host)]
    key = (target.host, target.port)
    cached = _dns.get(key)
    now = _monotonic()
    if cached is not None and cached[0] > now:
        return cached[1]
    infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    addresses: list[tuple[int, str]] = []
    for family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0])  # an IPv4 or IPv6 address: a str already
        if (family, address) not in addresses:
            addresses.append((family, address))
    if not addresses:
        raise ConnectFailed(f"No address for {target.host}.")
    _dns[key] = (now + DNS_TTL, addresses)
    return addresses


# --- The pool -----------------------------------------------------------------------------


class _Pool:
    """Idle keep-alive connections of one event loop, most recently used last."""

    __slots__ = ("closed", "idle")

    def __init__(self) -> None:
        self.idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self.closed = False

    def take(self, key: tuple[str, str, int]) -> _Connection | None:
        conns = self.idle.get(key)
        while conns:
            conn = conns.pop()
            conn.pooled = False
            if not conn.closed and _monotonic() - conn.idle_since < KEEPALIVE_EXPIRY:
                return conn
            conn.close()
        return None

    def put(self, conn: _Connection) -> None:
        if self.closed or conn.closed:
            conn.close()
            return
        conns = self.idle.get(conn.key)
        if conns is None:
            conns = self.idle[conn.key] = []
        now = _monotonic()
        # The oldest go first: over the cap, or idle for too long.
        while conns and (
            len(conns) >= MAX_IDLE_PER_KEY or now - conns[0].idle_since >= KEEPALIVE_EXPIRY
        ):
            old = conns.pop(0)
            old.pooled = False
            old.close()
        conn.idle_since = now
        conn.pooled = True
        conns.append(conn)

    def discard(self, conn: _Connection) -> None:
        conn.pooled = False
        conns = self.idle.get(conn.key)
        if conns is not None and conn in conns:
            conns.remove(conn)

    def close(self) -> None:
        self.closed = True
        for conns in self.idle.values():
            for conn in conns:
                conn.pooled = False
                conn.close()
        self.idle.clear()


_pools: dict[asyncio.AbstractEventLoop, _Pool] = {}


def _pool_for(loop: asyncio.AbstractEventLoop) -> _Pool:
    pool = _pools.get(loop)
    if pool is None:
        for old in [other for other in _pools if other.is_closed()]:
            del _pools[old]
        pool = _pools[loop] = _Pool()
    return pool


def pool_loops() -> list[asyncio.AbstractEventLoop]:
    """The event loops that have a connection pool (tests close them on their own loop)."""
    return list(_pools)


async def close_pools() -> None:
    """Close every idle pooled connection, on every loop.

    The running loop's are closed here; another running loop's are closed on that loop (its
    transports are not ours to touch from here); a closed loop's went with it. Connections in
    use are closed when their response ends, instead of going back to a pool.
    """
    loop = asyncio.get_running_loop()
    for other, pool in list(_pools.items()):
        if other is loop:
            pool.close()
        elif not other.is_closed():
            other.call_soon_threadsafe(pool.close)
        else:
            pool.closed = True
    _pools.clear()
    await asyncio.sleep(0)  # let the transports finish closing


# --- A connection -------------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: feeds arriving bytes to httptools, which calls back the
    ``on_*`` methods; body bytes go to the current ``Response``."""

    __slots__ = (
        "closed",
        "complete",
        "headers",
        "headers_waiter",
        "idle_since",
        "idle_timeout",
        "informational",
        "keep_alive",
        "key",
        "last_data",
        "loop",
        "parser",
        "paused",
        "pool",
        "pooled",
        "resp",
        "timer",
        "transport",
        "until_close",
    )

    def __init__(
        self, loop: asyncio.AbstractEventLoop, pool: _Pool, key: tuple[str, str, int]
    ) -> None:
        self.loop = loop
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False  # the peer or we ended it: never reused
        self.pooled = False
        self.idle_since = 0.0
        self.resp: Response | None = None  # the response being received
        self.headers_waiter: asyncio.Future | None = None
        self.headers: dict[bytes, bytes] = {}
        self.timer: asyncio.TimerHandle | None = None  # first byte, then idle
        self.idle_timeout = 0.0
        self.last_data = 0.0
        self.paused = False
        self.complete = False
        self.keep_alive = False
        self.until_close = False
        self.informational = False

    # asyncio calls ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio and uvloop both set TCP_NODELAY on TCP sockets themselves.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        resp = self.resp
        if resp is None:
            # Bytes nobody asked for (on an idle or abandoned connection): not reusable.
            self.close()
            return
        self.last_data = _monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(MalformedResponse("The upstream switched protocols."))
            return
        except httptools.HttpParserError as exc:
            if self.complete:  # junk after a complete response: keep the response, drop this
                self.keep_alive = False
            else:
                self._fail(MalformedResponse(f"Malformed HTTP response: {exc}"))
                return
        if self.complete:
            self._finish()
        elif resp._size > HIGH_WATER and not self.paused:
            self.paused = True
            assert self.transport is not None  # bytes arrive through it
            self.transport.pause_reading()
        waiter = resp._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> None:
        # The peer will send nothing more: never reuse this connection. Returning None lets
        # the transport close; connection_lost then settles any response in progress.
        self.closed = True
        if self.pooled:
            self.pool.discard(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.pooled:
            self.pool.discard(self)
        self._cancel_timer()
        resp = self.resp
        if resp is None:
            return
        self.resp = None
        waiter = self.headers_waiter
        if waiter is not None:
            self.headers_waiter = None
            if not waiter.done():
                waiter.set_exception(
                    ConnectFailed("The connection closed before a response arrived.")
                )
            return
        resp._conn = None
        if self.until_close and exc is None:
            resp._done = True  # the body was framed by the end of the connection
            resp._wake()
        else:
            resp._fail(ConnectionCut("The connection ended before the response was complete."))

    # httptools calls --------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        headers = self.headers
        if name in headers:
            headers[name] += b", " + value
        else:
            headers[name] = value

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        headers = self.headers
        self.headers = {}
        if status < 200:
            self.informational = True  # 1xx: the real response follows
            return
        resp = self.resp
        assert resp is not None  # httptools calls back from data_received, which has one
        resp.status = status
        resp._raw = headers
        encoding = headers.get(b"content-encoding")
        if encoding is not None:
            resp._set_encoding(encoding)
        te = headers.get(b"transfer-encoding")
        self.until_close = (
            (te is None or b"chunked" not in te.lower())
            and b"content-length" not in headers
            and status not in (204, 304)
        )
        self._cancel_timer()
        waiter = self.headers_waiter
        self.headers_waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_body(self, body: bytes) -> None:
        resp = self.resp
        assert resp is not None  # as in on_headers_complete
        resp._chunks.append(body)
        resp._size += len(body)

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        # Asked here: llhttp forgets the message's framing once this callback returns.
        self.keep_alive = self.parser.should_keep_alive()
        self.complete = True

    # Ours -------------------------------------------------------------------------------

    async def request(self, data: bytes, first_byte_delay: float, idle_timeout: float) -> Response:
        resp = Response(self)
        self.resp = resp
        self.complete = False
        self.idle_timeout = idle_timeout
        self.last_data = _monotonic()
        waiter = self.headers_waiter = self.loop.create_future()
        self.timer = self.loop.call_later(max(first_byte_delay, 0.0), self._first_byte_late)
        assert self.transport is not None  # connected, and not aborted (a pooled one is open)
        self.transport.write(data)
        try:
            await waiter
        except BaseException:
            # Failed, timed out, or the caller was cancelled: the request is abandoned.
            if self.resp is resp:
                self.resp = None
            self.headers_waiter = None
            self.abort()
            raise
        return resp

    def _first_byte_late(self) -> None:
        self.timer = None
        waiter = self.headers_waiter
        if waiter is None:
            return
        self.headers_waiter = None
        self.resp = None
        self.abort()
        if not waiter.done():
            waiter.set_exception(Timeout("The response headers did not arrive in time."))

    def arm_idle_timer(self) -> None:
        """A reader is about to wait for body bytes: make sure a silence will be noticed."""
        if self.timer is None:
            delay = self.last_data + self.idle_timeout - _monotonic()
            self.timer = self.loop.call_later(max(delay, 0.0), self._idle_check)

    def _idle_check(self) -> None:
        self.timer = None
        resp = self.resp
        if resp is None or resp._waiter is None:
            return  # nobody is waiting: the next wait arms the timer again
        delay = self.last_data + self.idle_timeout - _monotonic()
        if delay > 0:
            self.timer = self.loop.call_later(delay, self._idle_check)
            return
        self.resp = None
        resp._conn = None
        self.abort()
        resp._fail(Timeout("No body bytes arrived within the idle timeout."))

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self.last_data = _monotonic()  # the silence while paused was ours
            if not self.closed:
                assert self.transport is not None  # only abort() drops it, and closes
                self.transport.resume_reading()

    def _finish(self) -> None:
        """The response is complete: it keeps its body; the connection is free."""
        resp = self.resp
        assert resp is not None and self.transport is not None  # called from data_received
        self.resp = None
        self.complete = False
        self._cancel_timer()
        resp._conn = None
        resp._done = True
        if self.paused:
            self.paused = False
            self.transport.resume_reading()  # an idle connection must see the peer's EOF
        if self.keep_alive and not self.closed:
            self.pool.put(self)
        else:
            self.close()

    def _fail(self, exc: ClientError) -> None:
        resp = self.resp
        self.resp = None
        self.abort()
        waiter = self.headers_waiter
        if waiter is not None:
            self.headers_waiter = None
            if not waiter.done():
                waiter.set_exception(exc)
        elif resp is not None:
            resp._conn = None
            resp._fail(exc)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def close(self) -> None:
        """Close politely (an idle connection we no longer want)."""
        self.closed = True
        self._cancel_timer()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()

    def abort(self) -> None:
        """Drop at once, unsent data and all (a request we abandon)."""
        self.closed = True
        self._cancel_timer()
        if self.pooled:
            self.pool.discard(self)
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.abort()


# --- The response -------------------------------------------------------------------------


class Response:
    """A response whose headers have arrived; the body is read with read() or read_chunk().

    Read it to the end, ``release()`` or ``close()`` it: a response left half-read keeps its
    connection open.
    """

    __slots__ = (
        "_chunks",
        "_conn",
        "_decoder",
        "_done",
        "_exc",
        "_headers",
        "_inflate_tail",
        "_raw",
        "_size",
        "_waiter",
        "_zlib_fallback",
        "status",
    )

    def __init__(self, conn: _Connection) -> None:
        self.status = 0
        self._raw: dict[bytes, bytes] = {}
        self._headers: dict[str, str] | None = None
        self._conn: _Connection | None = conn  # None once complete, failed or closed
        self._chunks: list[bytes] = []
        self._size = 0
        self._waiter: asyncio.Future | None = None
        self._done = False
        self._exc: ClientError | None = None
        # A zlib decompressor, or the name of a coding we cannot decode (refused on read).
        self._decoder: zlib._Decompress | str | None = None
        self._inflate_tail = b""
        self._zlib_fallback = False

    @property
    def headers(self) -> dict[str, str]:
        """The response headers, names in lower case (repeated ones joined with ", ")."""
        if self._headers is None:
            self._headers = {
                name.decode("latin-1"): value.decode("latin-1") for name, value in self._raw.items()
            }
        return self._headers

    def header(self, name: str) -> str | None:
        value = self._raw.get(name.lower().encode("latin-1"))
        return None if value is None else value.decode("latin-1")

    @property
    def complete(self) -> bool:
        """The whole body has arrived (it may not all have been read yet)."""
        return self._done

    async def read(self) -> bytes:
        """The whole body."""
        if self._done and self._decoder is None and self._exc is None:
            return self._take()
        parts = []
        while chunk := await self.read_chunk():
            parts.append(chunk)
        return b"".join(parts)

    async def read_chunk(self) -> bytes:
        """The body bytes that have arrived, waiting for some if none has; b"" at the end."""
        while True:
            if self._chunks:
                data = self._take()
                if self._decoder is None:
                    return data
                data = self._inflate(data)
                if data:
                    return data
                continue
            if self._inflate_tail:
                data = self._inflate(b"")
                if data:
                    return data
                continue
            if self._exc is not None:
                raise self._exc
            if self._done:
                if self._decoder is not None:
                    decoder, self._decoder = self._decoder, None
                    if isinstance(decoder, str):
                        raise MalformedResponse(f"Unsupported Content-Encoding: {decoder}.")
                    return decoder.flush()
                return b""
            conn = self._conn
            assert conn is not None  # it goes only once the body is done or failed
            waiter = self._waiter = conn.loop.create_future()
            conn.arm_idle_timer()
            try:
                await waiter
            finally:
                self._waiter = None

    def close(self) -> None:
        """Abandon the response: a connection still receiving it is aborted (so the upstream
        sees the request cancelled). Nothing to do once it was complete."""
        conn = self._conn
        if conn is not None:
            self._conn = None
            conn.resp = None
            conn.abort()
            self._fail(ConnectionCut("The response was closed before it was complete."))
        self._chunks.clear()
        self._size = 0

    def release(self) -> None:
        """Done with the response. A complete one's connection is already back in the pool;
        an incomplete one cannot be reused, so this is close()."""
        if self._conn is not None:
            self.close()

    def _take(self) -> bytes:
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._size = 0
        conn = self._conn
        if conn is not None and conn.paused:
            conn.resume()
        return data

    def _fail(self, exc: ClientError) -> None:
        if self._exc is None and not self._done:
            self._exc = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _set_encoding(self, value: bytes) -> None:
        coding = value.strip().lower()
        if coding in (b"", b"identity"):
            return
        if coding in (b"gzip", b"x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == b"deflate":
            # RFC 9110 says zlib-wrapped; some servers send raw deflate: tried if zlib fails.
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS)
            self._zlib_fallback = True
        else:
            self._decoder = value.decode("latin-1")  # read_chunk refuses it

    def _inflate(self, data: bytes) -> bytes:
        decoder = self._decoder
        if isinstance(decoder, str):
            self._chunks.clear()
            self._inflate_tail = b""
            self._decoder = None
            raise MalformedResponse(f"Unsupported Content-Encoding: {decoder}.")
        assert decoder is not None  # read_chunk inflates only a body with a coding
        if self._inflate_tail:
            data = self._inflate_tail + data
        try:
            out = decoder.decompress(data, MAX_INFLATE)
        except zlib.error as exc:
            if not self._zlib_fallback:
                raise MalformedResponse(f"Undecodable compressed body: {exc}") from None
            self._zlib_fallback = False
            self._decoder = decoder = zlib.decompressobj(-zlib.MAX_WBITS)
            try:
                out = decoder.decompress(data, MAX_INFLATE)
            except zlib.error as exc2:
                raise MalformedResponse(f"Undecodable compressed body: {exc2}") from None
        self._zlib_fallback = False
        self._inflate_tail = decoder.unconsumed_tail
        return out


# --- Entry point --------------------------------------------------------------------------


async def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    connect_timeout: float = 5.0,
    first_byte_timeout: float = 60.0,
    idle_timeout: float = 60.0,
    ssl_context: ssl.SSLContext | None = None,
) -> Response:
    """POST ``body`` to ``url`` and return the response once its headers arrived.

    ``headers`` are sent as given, after Host and before Content-Length and
    ``Accept-Encoding: identity`` (so do not pass those). ``ssl_context`` replaces the default
    one (tests with a self-signed certificate); connections are pooled by (scheme, host, port)
    only, so do not mix contexts for one host on one loop.

    Raises ``Timeout`` (connecting or headers too slow), ``ConnectFailed`` and
    ``MalformedResponse``; cancelling the call aborts the connection.
    """
    started = _monotonic()
    target = _target(url)
    extra = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    if extra.count("\n") != len(headers) or extra.count("\r") != len(headers):
        raise ValueError("Header names and values must not contain CR or LF.")
    data = (
        f"{target.prefix}{extra}Content-Length: {len(body)}\r\nAccept-Encoding: identity\r\n\r\n"
    ).encode() + body
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop) or _pool_for(loop)
    conn = pool.take(target.key)
    if conn is None:
        connect_budget = min(connect_timeout, first_byte_timeout)
        conn = await _connect(loop, pool, target, connect_budget, ssl_context)
    remaining = first_byte_timeout - (_monotonic() - started)
    return await conn.request(data, remaining, idle_timeout)


async def _connect(
    loop: asyncio.AbstractEventLoop,
    pool: _Pool,
    target: _Target,
    timeout: float,
    ssl_context: ssl.SSLContext | None,
) -> _Connection:
    context = (ssl_context or _default_ssl_context()) if target.tls else None
    try:
        async with asyncio.timeout(timeout):
            addresses = await _resolve(loop, target)
            failure: OSError | None = None
            for family, address in addresses:  # in resolver order, the next one if refused
                try:
                    _transport, conn = await loop.create_connection(
                        lambda: _Connection(loop, pool, target.key),
                        address,
                        target.port,
                        ssl=context,
                        server_hostname=target.host if context is not None else None,
                        family=family,
                    )
                    return conn
                except OSError as exc:
                    failure = exc
            raise failure or ConnectFailed("No address to connect to.")
    except TimeoutError as exc:
        raise Timeout("Connecting to the upstream took too long.") from exc
    except OSError as exc:
        _dns.pop((target.host, target.port), None)
        raise ConnectFailed(f"Could not connect: {exc.__class__.__name__}.") from exc
