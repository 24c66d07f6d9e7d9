"""The reference: the smallest useful async proxy in Python, for `make bench` to compare with.

It forwards POST /v1/chat/completions to the upstream with one pooled aiohttp session and relays
the body chunk by chunk: no auth, no accounting, no parsing. What the gateway adds on top of this
is the price of everything it does besides moving bytes.

    python bench/passthrough.py --port 8201 --upstream http://127.0.0.1:8100 [--processes 2]
"""

import argparse
import asyncio
import multiprocessing
import socket

import aiohttp
from aiohttp import web

_SESSION = web.AppKey("session", aiohttp.ClientSession)
_UPSTREAM = web.AppKey("upstream", str)
_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive"}


async def relay(request: web.Request) -> web.StreamResponse:
    session = request.app[_SESSION]
    body = await request.read()
    async with session.post(
        request.app[_UPSTREAM] + request.path,
        data=body,
        headers={"Content-Type": "application/json"},
    ) as upstream:
        headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
        resp = web.StreamResponse(status=upstream.status, headers=headers)
        await resp.prepare(request)
        async for chunk in upstream.content.iter_any():
            await resp.write(chunk)
        await resp.write_eof()
        return resp


async def _open_session(app: web.Application) -> None:
    app[_SESSION] = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None)
    )


async def _close_session(app: web.Application) -> None:
    await app[_SESSION].close()


def build_app(upstream: str) -> web.Application:
    app = web.Application()
    app[_UPSTREAM] = upstream.rstrip("/")
    app.on_startup.append(_open_session)
    app.on_cleanup.append(_close_session)
    app.router.add_post("/v1/chat/completions", relay)
    return app


def serve(sock: socket.socket, upstream: str) -> None:
    try:
        import uvloop
    except ImportError:
        loop = asyncio.new_event_loop()
    else:
        loop = uvloop.new_event_loop()
    web.run_app(build_app(upstream), sock=sock, loop=loop, print=None, access_log=None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    # One listening socket shared by the processes, like gunicorn's workers share theirs.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(1024)
    sock.set_inheritable(True)
    workers = [
        multiprocessing.Process(target=serve, args=(sock, args.upstream), daemon=True)
        for _ in range(args.processes - 1)
    ]
    for w in workers:
        w.start()
    serve(sock, args.upstream)


if __name__ == "__main__":
    main()
