"""CPU per upstream call of the gateway's HTTP client, measured in-process (not a test).

Runs N calls of ``routing.upstream`` (post_json + read_json, or post_json + iter_sse) against a
running demo upstream, sequentially and C at a time, under uvloop, and divides the process's CPU
time (``time.process_time``) by the number of calls. ``--modes aiohttp`` runs a copy of the
aiohttp path the gateway used before ``routing.http_client`` (same session options, timeouts and
reads), so both can be compared in one run on the same machine.

    .venv/bin/python manage.py demo_upstream --port 8299 --chunk-interval-ms 0 \
        --completion-tokens 16 &
    DJANGO_SETTINGS_MODULE=lowrouter.settings .venv/bin/python bench/upstream_cpu.py

The figures include building and parsing the JSON (the same in every mode); only differences
between modes measured in the same run mean anything.
"""

import argparse
import asyncio
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lowrouter.settings")

import django  # noqa: E402

django.setup()

import aiohttp  # noqa: E402
import uvloop  # noqa: E402
from django.conf import settings  # noqa: E402

from catalog.snapshot import OfferingView  # noqa: E402
from lowrouter import jsonio  # noqa: E402
from routing import upstream  # noqa: E402


def _offering(base_url: str) -> OfferingView:
    return OfferingView(
        model_id="demo/echo",
        provider_id="demo",
        provider_name="demo",
        region="eu",
        upstream_model="demo-small",
        base_url=base_url,
        wire_format="openai",
        credential="sk-bench",
        currency="EUR",
        prompt_eur=None,
        completion_eur=None,
        cached_prompt_eur=None,
        unavailable_reason="",
        provider_status="active",
    )


def _payload(stream: bool) -> dict:
    return {
        "model": "demo-small",
        "messages": [{"role": "user", "content": "Say something short for the benchmark."}],
        "max_tokens": 64,
        "stream": stream,
    }


# --- The aiohttp path as routing/upstream.py had it ----------------------------------------

_old_sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}


def _old_session() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    session = _old_sessions.get(loop)
    if session is None:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True),
            skip_auto_headers=("User-Agent",),
        )
        _old_sessions[loop] = session
    return session


async def _old_post(offering: OfferingView, payload: dict) -> aiohttp.ClientResponse:
    headers = {"Content-Type": "application/json"}
    if offering.credential:
        headers["Authorization"] = f"Bearer {offering.credential}"
    async with asyncio.timeout(settings.LOWROUTER_UPSTREAM_FIRST_BYTE_TIMEOUT):
        resp = await _old_session().post(
            offering.base_url + "/chat/completions",
            data=jsonio.dumps(payload),
            headers=headers,
            timeout=aiohttp.ClientTimeout(
                total=None,
                sock_connect=settings.LOWROUTER_UPSTREAM_CONNECT_TIMEOUT,
                sock_read=settings.LOWROUTER_UPSTREAM_IDLE_TIMEOUT,
            ),
        )
    assert resp.status == 200, resp.status
    return resp


async def _old_json(offering: OfferingView) -> int:
    resp = await _old_post(offering, _payload(False))
    try:
        body = await resp.read()
    finally:
        resp.release()
    jsonio.loads(body)
    return 0


async def _old_stream(offering: OfferingView) -> int:
    resp = await _old_post(offering, _payload(True))
    events, pending = 0, b""
    data: list[str] = []
    async for block in resp.content.iter_any():
        lines = (pending + block).split(b"\n")
        pending = lines.pop()
        for raw in lines:
            line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
            if not line:
                if data:
                    events += 1
                    data = []
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
    resp.close()
    return events


# --- The current routing.upstream -----------------------------------------------------------


async def _new_json(offering: OfferingView) -> int:
    resp = await upstream.post_json(offering, "/chat/completions", _payload(False))
    await upstream.read_json(resp)
    resp.release()
    return 0


async def _new_stream(offering: OfferingView) -> int:
    resp = await upstream.post_json(offering, "/chat/completions", _payload(True))
    events = 0
    async for _event in upstream.iter_sse(resp):
        events += 1
    resp.close()
    return events


CALLS = {
    ("aiohttp", "json"): _old_json,
    ("aiohttp", "stream"): _old_stream,
    ("upstream", "json"): _new_json,
    ("upstream", "stream"): _new_stream,
}


async def _run(call, offering: OfferingView, count: int, concurrency: int) -> tuple[float, int]:
    """CPU seconds and SSE events for ``count`` calls, ``concurrency`` at a time."""
    events = 0
    remaining = count

    async def worker() -> None:
        nonlocal events, remaining
        while remaining > 0:
            remaining -= 1
            n = await call(offering)
            events += n

    await asyncio.gather(*(worker() for _ in range(concurrency)))  # warm-up: pool, caches
    remaining, events = count, 0
    cpu = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.process_time() - cpu, events


def _set_chunk_interval(url: str, ms: float) -> None:
    root = url.rsplit("/v1", 1)[0]
    body = jsonio.dumps({"chunk_interval_ms": ms})
    request = urllib.request.Request(root + "/_demo/config", data=body, method="POST")
    urllib.request.urlopen(request, timeout=5).read()


async def _main(args: argparse.Namespace) -> None:
    offering = _offering(args.url)
    scenarios = [(kind, c, 0.0) for kind in args.kinds for c in args.concurrency]
    if "stream" in args.kinds and args.spaced_ms:
        # Events a few ms apart arrive one per read: CPU per call / events = CPU per chunk.
        scenarios += [("stream", c, args.spaced_ms) for c in args.concurrency]
    for kind, concurrency, interval in scenarios:
        _set_chunk_interval(args.url, interval)
        calls = args.calls if not interval else max(100, args.calls // 8)
        results: dict[str, list[float]] = {mode: [] for mode in args.modes}
        events = 0
        for _round in range(args.rounds):
            for mode in args.modes:
                cpu, events = await _run(CALLS[(mode, kind)], offering, calls, concurrency)
                results[mode].append(cpu / calls * 1e6)
        for mode, figures in results.items():
            label = f"{kind}" + (f" {interval:g}ms apart" if interval else "")
            line = (
                f"{label:18} c={concurrency:<3} {mode:9} "
                f"median {statistics.median(figures):5.0f} us CPU/call "
                f"(rounds: {', '.join(f'{f:.0f}' for f in figures)})"
            )
            if events:
                per_event = statistics.median(figures) / (events / calls)
                line += f", {events / calls:.0f} events/call, {per_event:.1f} us/event"
            print(line, flush=True)
    _set_chunk_interval(args.url, 0.0)
    for session in _old_sessions.values():
        await session.close()
    await upstream.close_sessions()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8299/v1")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--spaced-ms", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--kinds", nargs="+", default=["json", "stream"])
    parser.add_argument("--modes", nargs="+", default=["aiohttp", "upstream"])
    args = parser.parse_args()
    uvloop.run(_main(args))


if __name__ == "__main__":
    main()
