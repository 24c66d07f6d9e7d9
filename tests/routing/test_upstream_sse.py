"""Server-Sent Events as upstreams really send them: split anywhere, CRLF or LF, comments,
other fields, multi-line data, no blank line at the end. A real HTTP server on 127.0.0.1 writes
the body in awkward pieces; ``iter_sse`` must see the same events whatever the split."""

import asyncio

import pytest
from aiohttp import web

from routing import http_client
from routing.upstream import iter_sse

BODY = (
    b": keep-alive comment\r\n"
    b"\r\n"
    b"event: message\r\n"
    b'data: {"a": 1}\r\n'
    b"\r\n"
    b'data: {"b":\n'
    b"data:  2}\n"
    b"id: 7\n"
    b"\n"
    b"data: caf\xc3\xa9\n"
    b"\n"
    b"data: [DONE]"
)
EXPECTED = ['{"a": 1}', '{"b":\n2}', "caf\u00e9", "[DONE]"]


async def _events(pieces: list[bytes]) -> list[str]:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for piece in pieces:
            await resp.write(piece)
            await asyncio.sleep(0.005)  # separate reads on the client
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        r = await http_client.post(f"http://127.0.0.1:{port}/", b"{}", {})
        try:
            return [event.data async for event in iter_sse(r)]
        finally:
            r.close()
    finally:
        await http_client.close_pools()
        await runner.cleanup()


@pytest.mark.parametrize(
    "pieces",
    [
        [BODY],
        [BODY[i : i + 1] for i in range(len(BODY))],  # one byte at a time (é split too)
        [BODY[:30], BODY[30:31], BODY[31:77], BODY[77:]],  # through a CRLF and mid-data
    ],
    ids=["whole", "byte-by-byte", "uneven"],
)
def test_events_survive_any_split(pieces):
    assert asyncio.run(_events(pieces)) == EXPECTED
