"""routing.http_client's documented contract (its module docstring), against real servers on
127.0.0.1: raw asyncio servers that write exactly the bytes a test wants, when it wants, on
plain asyncio and on uvloop. Runs the same on either database (it uses none)."""

import asyncio
import datetime
import gzip
import ipaddress
import socket
import ssl
import time
import zlib
from collections.abc import Awaitable, Callable

import pytest
import uvloop

from routing import http_client
from routing.http_client import ConnectFailed, ConnectionCut, MalformedResponse, Timeout

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request):
    """Run a scenario on a fresh loop of either kind, closing the loop's pool at the end."""
    runner = asyncio.run if request.param == "asyncio" else uvloop.run

    def _run(scenario: Awaitable):
        async def wrapped():
            try:
                return await scenario
            finally:
                await http_client.close_pools()

        return runner(wrapped())

    return _run


class Server:
    """A TCP (or TLS) server on 127.0.0.1 that hands every connection to ``handler``."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.connections = 0
        self.ended = 0  # connections the client closed or reset
        self.requests: list[tuple[list[str], bytes]] = []

    async def __aenter__(self) -> "Server":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        for task in list(self._tasks()):
            task.cancel()

    def _tasks(self):
        return [t for t in asyncio.all_tasks() if t.get_name().startswith("conn-")]

    def url(self, path: str = "/v1/chat/completions", scheme: str = "http", host: str = "") -> str:
        return f"{scheme}://{host or '127.0.0.1'}:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asyncio.current_task().set_name(f"conn-{self.connections}")
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.ended += 1
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> tuple[list[str], bytes] | None:
        """One request (head lines and body), or None when the client closed the connection."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            self.ended += 1
            return None
        lines = head.decode("latin-1").split("\r\n")[:-2]
        sizes = [line[15:] for line in lines if line.lower().startswith("content-length:")]
        length = int(sizes[0])
        body = await reader.readexactly(length)
        self.requests.append((lines, body))
        return lines, body

    async def wait_ended(self, count: int = 1, timeout: float = 3.0) -> None:
        deadline = time.monotonic() + timeout
        while self.ended < count:
            assert time.monotonic() < deadline, "the client did not close the connection"
            await asyncio.sleep(0.01)


def keep_alive_server(response: bytes, **kwargs) -> Server:
    """Answers every request on a connection with ``response`` until the client leaves."""

    async def handler(reader, writer):
        while await server.read_request(reader) is not None:
            writer.write(response)
            await writer.drain()

    server = Server(handler, **kwargs)
    return server


def plain(body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 200 OK\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def chunked(*chunks: bytes, head: str = "") -> bytes:
    out = f"HTTP/1.1 200 OK\r\n{head}Transfer-Encoding: chunked\r\n\r\n".encode()
    for chunk in chunks:
        out += f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    return out + b"0\r\n\r\n"


async def post(url: str, **kwargs) -> http_client.Response:
    headers = kwargs.pop("headers", {"Content-Type": "application/json"})
    return await http_client.post(url, b'{"q": 1}', headers, **kwargs)


# --- Framing --------------------------------------------------------------------------------


def test_content_length_body_and_the_request_sent(run):
    async def scenario():
        async with keep_alive_server(plain(b'{"ok": true}', "X-Thing: a")) as server:
            resp = await post(
                server.url("/prefix/v1/chat/completions"),
                headers={"Content-Type": "application/json", "Authorization": "Bearer k"},
            )
            assert resp.status == 200
            assert resp.header("x-thing") == "a" and resp.headers["x-thing"] == "a"
            assert await resp.read() == b'{"ok": true}'
            resp.release()
            lines, body = server.requests[0]
        assert lines[0] == "POST /prefix/v1/chat/completions HTTP/1.1"
        assert lines[1] == f"Host: 127.0.0.1:{server.port}"
        assert set(lines[2:]) == {
            "Content-Type: application/json",
            "Authorization: Bearer k",
            "Content-Length: 8",
            "Accept-Encoding: identity",
        }
        assert body == b'{"q": 1}'

    run(scenario())


BODY = b"".join(f"data: event {i}\n\n".encode() for i in range(40))
RESPONSE = chunked(BODY[:100], BODY[100:101], BODY[101:], head="Content-Type: text/plain\r\n")


@pytest.mark.parametrize(
    "cuts",
    [
        [],
        list(range(1, len(RESPONSE))),  # every byte on its own
        [5, 40, 71, 72, 73, 150, 151, 380],  # through the head, chunk sizes and CRLFs
    ],
    ids=["whole", "byte-by-byte", "uneven"],
)
def test_chunked_body_split_anywhere(run, cuts):
    pieces = [RESPONSE[a:b] for a, b in zip([0, *cuts], [*cuts, len(RESPONSE)], strict=True)]

    async def handler(reader, writer):
        await server.read_request(reader)
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.0005)

    server = Server(handler)

    async def scenario():
        async with server:
            resp = await post(server.url())
            blocks = []
            while block := await resp.read_chunk():
                blocks.append(block)
            assert b"".join(blocks) == BODY
            assert resp.complete

    run(scenario())


def test_body_until_the_connection_closes(run):
    async def handler(reader, writer):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nfirst ")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"and last")
        await writer.drain()

    server = Server(handler)

    async def scenario():
        async with server:
            resp = await post(server.url())
            assert await resp.read() == b"first and last"
            resp = await post(server.url())  # not pooled: a new connection
            assert await resp.read() == b"first and last"
            assert server.connections == 2

    run(scenario())


# --- Keep-alive -----------------------------------------------------------------------------


def test_keep_alive_reuses_one_connection(run):
    async def scenario():
        async with keep_alive_server(chunked(b"data: 1\n\n", b"data: 2\n\n")) as server:
            for _ in range(3):
                resp = await post(server.url())
                assert await resp.read() == b"data: 1\n\ndata: 2\n\n"
                resp.release()
            # Streamed to the end, then closed as the gateway does: still reusable.
            resp = await post(server.url())
            while await resp.read_chunk():
                pass
            resp.close()
            resp = await post(server.url())
            await resp.read()
            assert server.connections == 1
            assert len(server.requests) == 5

    run(scenario())


def test_concurrent_requests_use_separate_connections_then_share_the_pool(run):
    async def scenario():
        async with keep_alive_server(plain(b"x")) as server:

            async def one():
                resp = await post(server.url())
                return await resp.read()

            assert await asyncio.gather(*(one() for _ in range(4))) == [b"x"] * 4
            first = server.connections
            assert await asyncio.gather(*(one() for _ in range(4))) == [b"x"] * 4
            assert server.connections == first <= 4

    run(scenario())


def test_connection_close_response_is_not_pooled(run):
    async def scenario():
        async with keep_alive_server(plain(b"x", "Connection: close")) as server:
            for _ in range(2):
                resp = await post(server.url())
                assert await resp.read() == b"x"
            assert server.connections == 2

    run(scenario())


def test_a_pooled_connection_the_server_closed_is_not_reused(run):
    async def handler(reader, writer):
        await server.read_request(reader)
        writer.write(plain(b"x"))
        await writer.drain()
        await asyncio.sleep(0.05)  # then the server's idle timeout strikes

    server = Server(handler)

    async def scenario():
        async with server:
            resp = await post(server.url())
            assert await resp.read() == b"x"
            await asyncio.sleep(0.2)
            resp = await post(server.url())
            assert await resp.read() == b"x"
            assert server.connections == 2

    run(scenario())


# --- Failures before the response -----------------------------------------------------------


def test_connection_refused(run):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    with pytest.raises(ConnectFailed):
        run(post(f"http://127.0.0.1:{port}/v1/chat/completions"))


def test_unknown_host_and_bad_url(run):
    with pytest.raises(ConnectFailed):
        run(post("http://no-such-host.invalid/v1/chat/completions"))
    with pytest.raises(ConnectFailed):
        run(post("ftp://127.0.0.1/"))


def test_closed_before_any_response(run):
    async def handler(reader, writer):
        await server.read_request(reader)  # then close without a word

    server = Server(handler)

    async def scenario():
        async with server:
            with pytest.raises(ConnectFailed):
                await post(server.url())

    run(scenario())


def test_first_byte_timeout_abandons_the_request(run):
    async def handler(reader, writer):
        await server.read_request(reader)
        assert await reader.read() == b""  # no answer; wait for the client to leave
        server.ended += 1

    server = Server(handler)

    async def scenario():
        async with server:
            started = time.monotonic()
            with pytest.raises(Timeout) as info:
                await post(server.url(), first_byte_timeout=0.2)
            assert isinstance(info.value, TimeoutError)
            assert 0.15 < time.monotonic() - started < 3.0
            await server.wait_ended()

    run(scenario())


def test_cancelling_the_call_abandons_the_request(run):
    async def handler(reader, writer):
        await server.read_request(reader)
        assert await reader.read() == b""
        server.ended += 1

    server = Server(handler)

    async def scenario():
        async with server:
            task = asyncio.ensure_future(post(server.url()))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await server.wait_ended()

    run(scenario())


def test_malformed_http(run):
    async def scenario():
        async with keep_alive_server(b"HELLO THERE\r\n\r\n") as server:
            with pytest.raises(MalformedResponse):
                await post(server.url())

    run(scenario())


# --- Failures in the body -------------------------------------------------------------------


def test_idle_timeout_mid_body(run):
    async def handler(reader, writer):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        assert await reader.read() == b""  # hangs until the client gives up
        server.ended += 1

    server = Server(handler)

    async def scenario():
        async with server:
            resp = await post(server.url(), idle_timeout=0.2)
            assert await resp.read_chunk() == b"hello"
            started = time.monotonic()
            with pytest.raises(Timeout):
                await resp.read_chunk()
            assert 0.15 < time.monotonic() - started < 3.0
            await server.wait_ended()

    run(scenario())


def test_a_slow_but_steady_stream_is_not_idle(run):
    """Bytes every 0.05 s for 0.8 s with a 0.4 s idle timeout: the one timer re-arms itself."""

    async def handler(reader, writer):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(16):
            await asyncio.sleep(0.05)
            writer.write(b"1\r\nx\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    server = Server(handler)

    async def scenario():
        async with server:
            resp = await post(server.url(), idle_timeout=0.4)
            assert await resp.read() == b"x" * 16

    run(scenario())


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_cut_mid_body(run, framing):
    async def handler(reader, writer):
        await server.read_request(reader)
        if framing == "chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.transport.abort()

    server = Server(handler)

    async def scenario():
        async with server:
            resp = await post(server.url())
            with pytest.raises(ConnectionCut):
                await resp.read()
            resp = await post(server.url())
            assert await resp.read_chunk() == b"hello"  # what arrived is still delivered
            with pytest.raises(ConnectionCut):
                await resp.read_chunk()

    run(scenario())


@pytest.mark.parametrize("upstream", ["streaming", "silent"])
def test_close_mid_stream_closes_the_server_side(run, upstream):
    async def handler(reader, writer):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while True:  # an endless stream (or one chunk, then silence) until the client leaves
            writer.write(b"9\r\ndata: x\n\n\r\n")
            await writer.drain()
            if await _eof_within(reader, 0.01 if upstream == "streaming" else 5):
                server.ended += 1
                return

    server = Server(handler)

    async def scenario():
        async with server:
            resp = await post(server.url())
            assert (await resp.read_chunk()).startswith(b"data: x")
            resp.close()
            await server.wait_ended()
            resp.close()  # twice is fine
            with pytest.raises(ConnectionCut):
                await resp.read_chunk()
            resp = await post(server.url())  # the aborted connection was not pooled
            await resp.read_chunk()
            resp.close()
            assert server.connections == 2

    run(scenario())


async def _eof_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), seconds) == b""
    except TimeoutError:
        return False


def test_slow_reader_stops_the_socket_reads(run):
    """8 MB offered at once; a reader that does not read leaves at most a high-water mark of it
    in memory (the rest waits in the socket buffers and the server), then gets it all."""
    total = 8 * 1024 * 1024
    done = asyncio.Event

    async def handler(reader, writer):
        await server.read_request(reader)
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n".encode())
        block = b"x" * 65536
        for _ in range(total // len(block)):
            writer.write(block)
            await writer.drain()
        server.finished.set()

    server = Server(handler)

    async def scenario():
        server.finished = done()
        async with server:
            resp = await post(server.url())
            await asyncio.sleep(0.5)
            assert resp._size <= http_client.HIGH_WATER + 256 * 1024
            assert not server.finished.is_set()
            received = 0
            while block := await resp.read_chunk():
                received += len(block)
            assert received == total

    run(scenario())


# --- Content codings ------------------------------------------------------------------------

TEXT = b"data: " + b"compressible " * 500 + b"\n\n"


@pytest.mark.parametrize(
    "coding,encoded",
    [
        ("gzip", gzip.compress(TEXT)),
        ("deflate", zlib.compress(TEXT)),
        ("deflate", zlib.compress(TEXT)[2:-4]),  # raw deflate, as some servers send it
    ],
    ids=["gzip", "deflate", "raw-deflate"],
)
def test_compressed_body_is_inflated(run, coding, encoded):
    pieces = [encoded[i : i + 7] for i in range(0, len(encoded), 7)]
    response = chunked(*pieces, head=f"Content-Encoding: {coding}\r\n")

    async def scenario():
        async with keep_alive_server(response) as server:
            resp = await post(server.url())
            assert await resp.read() == TEXT
            resp = await post(server.url())
            blocks = []
            while block := await resp.read_chunk():
                blocks.append(block)
            assert b"".join(blocks) == TEXT

    run(scenario())


def test_unsupported_or_corrupt_coding_is_malformed(run):
    async def scenario():
        async with keep_alive_server(plain(b"abc", "Content-Encoding: br")) as server:
            resp = await post(server.url())
            assert resp.status == 200
            with pytest.raises(MalformedResponse):
                await resp.read()
        async with keep_alive_server(plain(b"not gzip", "Content-Encoding: gzip")) as server:
            resp = await post(server.url())
            with pytest.raises(MalformedResponse):
                await resp.read()

    run(scenario())


# --- TLS ------------------------------------------------------------------------------------


def _self_signed() -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem


def test_tls_with_sni_keep_alive_and_certificate_checks(run, tmp_path):
    pytest.importorskip("cryptography")
    cert_pem, key_pem = _self_signed()
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    seen_names = []
    server_context.sni_callback = lambda sock, name, ctx: seen_names.append(name)
    trusting = ssl.create_default_context(cadata=cert_pem.decode())

    async def scenario():
        async with keep_alive_server(plain(b"secret"), ssl_context=server_context) as server:
            # "localhost" may resolve to ::1 first, where nobody listens: the next address.
            url = server.url(scheme="https", host="localhost")
            for _ in range(2):
                resp = await post(url, ssl_context=trusting)
                assert await resp.read() == b"secret"
            assert server.connections == 1
            assert seen_names == ["localhost"]
            await http_client.close_pools()
            # The default context does not trust a self-signed certificate.
            with pytest.raises(ConnectFailed):
                await post(url)

    run(scenario())


# --- URLs and request headers ---------------------------------------------------------------


def test_a_query_string_is_kept_and_a_bad_url_fails_to_connect(run):
    async def scenario():
        async with keep_alive_server(plain(b"x")) as server:
            resp = await post(server.url("/v1/chat?api-version=2"))
            await resp.read()
            assert server.requests[0][0][0] == "POST /v1/chat?api-version=2 HTTP/1.1"
        for url in (
            "http://127.0.0.1:99999/v1",  # a port out of range
            "http:///v1",  # no host
            "http://127.0.0.1/v1 x",  # whitespace in the request line
        ):
            with pytest.raises(ConnectFailed):
                await post(url)

    run(scenario())


def test_a_host_name_is_resolved_and_the_next_address_tried_when_one_refuses(run):
    """``localhost`` may resolve to ::1 first, where nothing listens: 127.0.0.1 is then
    tried. The Host header keeps the name."""

    async def scenario():
        async with keep_alive_server(plain(b"x")) as server:
            for _ in range(2):  # the second from the name cache
                resp = await post(server.url(host="localhost"))
                assert await resp.read() == b"x"
            assert server.requests[0][0][1] == f"Host: localhost:{server.port}"

    run(scenario())


def test_a_non_ascii_host_is_sent_as_idna_and_fails_to_connect_when_unknown(run):
    with pytest.raises(ConnectFailed):
        run(post("http://bücher.invalid/v1/chat/completions"))


def test_header_values_with_a_line_break_are_refused_before_anything_is_sent(run):
    async def scenario():
        async with keep_alive_server(plain(b"x")) as server:
            with pytest.raises(ValueError):
                await post(server.url(), headers={"X-Evil": "a\r\nX-Injected: 1"})
            assert server.connections == 0

    run(scenario())


# --- Response heads -------------------------------------------------------------------------


def test_repeated_headers_are_joined_and_names_are_case_insensitive(run):
    async def scenario():
        async with keep_alive_server(plain(b"x", "Set-Thing: a", "set-thing: b")) as server:
            resp = await post(server.url())
            assert resp.header("SET-THING") == "a, b" and resp.headers["set-thing"] == "a, b"
            assert resp.header("x-absent") is None
            await resp.read()

    run(scenario())


def test_an_informational_response_is_skipped_for_the_real_one(run):
    async def scenario():
        async with keep_alive_server(b"HTTP/1.1 100 Continue\r\n\r\n" + plain(b"x")) as server:
            resp = await post(server.url())
            assert resp.status == 200 and await resp.read() == b"x"

    run(scenario())


def test_a_protocol_switch_is_malformed(run):
    switch = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"

    async def scenario():
        async with keep_alive_server(switch) as server:
            with pytest.raises(MalformedResponse):
                await post(server.url())

    run(scenario())


# --- The pool's limits ----------------------------------------------------------------------


def test_an_idle_connection_past_the_keepalive_expiry_is_not_reused(run, monkeypatch):
    monkeypatch.setattr(http_client, "KEEPALIVE_EXPIRY", 0.05)

    async def scenario():
        async with keep_alive_server(plain(b"x")) as server:
            for _ in range(2):
                resp = await post(server.url())
                await resp.read()
                await asyncio.sleep(0.1)
            assert server.connections == 2

    run(scenario())


def test_at_most_max_idle_per_key_connections_are_kept(run, monkeypatch):
    monkeypatch.setattr(http_client, "MAX_IDLE_PER_KEY", 1)

    async def scenario():
        async with keep_alive_server(plain(b"x")) as server:

            async def one():
                resp = await post(server.url())
                return await resp.read()

            await asyncio.gather(one(), one())
            assert server.connections == 2
            await asyncio.gather(one(), one())  # one kept, one new
            assert server.connections == 3

    run(scenario())


def test_a_complete_response_released_unread_leaves_its_connection_pooled(run):
    async def scenario():
        async with keep_alive_server(plain(b"x" * 1000)) as server:
            resp = await post(server.url())
            while not resp.complete:
                await asyncio.sleep(0.01)
            resp.release()  # nothing read: the body had arrived, so the connection is free
            resp = await post(server.url())
            assert await resp.read() == b"x" * 1000
            assert server.connections == 1

    run(scenario())


def test_bytes_arriving_on_an_idle_connection_keep_it_out_of_the_pool(run):
    async def handler(reader, writer):
        await server.read_request(reader)
        writer.write(plain(b"x"))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"HTTP/1.1 200 OK\r\n")  # nobody asked
        await writer.drain()
        await server.read_request(reader)

    server = Server(handler)

    async def scenario():
        async with server:
            resp = await post(server.url())
            assert await resp.read() == b"x"
            await asyncio.sleep(0.2)
            resp = await post(server.url())  # handled by a second connection
            await resp.read()
            assert server.connections == 2

    run(scenario())


def test_junk_after_a_complete_response_keeps_the_response_but_not_the_connection(run):
    async def scenario():
        async with keep_alive_server(plain(b"x") + b"\x00junk") as server:
            resp = await post(server.url())
            assert await resp.read() == b"x"
            resp = await post(server.url())
            assert await resp.read() == b"x"
            assert server.connections == 2

    run(scenario())


def test_closing_the_pools_closes_the_idle_connections(run):
    async def scenario():
        async with keep_alive_server(plain(b"x")) as server:
            resp = await post(server.url())
            await resp.read()
            await http_client.close_pools()
            await server.wait_ended()
            resp = await post(server.url())  # a new pool, a new connection
            await resp.read()
            assert server.connections == 2

    run(scenario())


# --- Connect timeout ------------------------------------------------------------------------


def test_a_tls_handshake_that_never_completes_is_a_connect_timeout(run):
    async def silent(reader, writer):
        await reader.read()  # accepts TCP, never answers the TLS hello

    server = Server(silent)

    async def scenario():
        async with server:
            started = time.monotonic()
            with pytest.raises(Timeout):
                await post(server.url(scheme="https"), connect_timeout=0.2)
            assert time.monotonic() - started < 2

    run(scenario())


def test_a_connection_in_use_when_the_pools_close_is_closed_when_its_response_ends(run):
    async def handler(reader, writer):
        while await server.read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nx")
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.write(b"y")
            await writer.drain()

    server = Server(handler)

    async def scenario():
        async with server:
            resp = await post(server.url())
            await http_client.close_pools()
            assert await resp.read() == b"xy"
            await server.wait_ended()
            resp = await post(server.url())
            assert await resp.read() == b"xy"
            assert server.connections == 2

    run(scenario())
