"""A bounded closed-loop load generator: C clients, each sending its next request as soon as
the previous one finished, for a fixed duration (or a fixed count), on one event loop. Each
client keeps one HTTP/1.1 connection, written to and parsed (httptools) at the protocol level:
aiohttp's client took 1.5-1.7 ms of CPU per 16-chunk stream on the cores it shares with the
servers it measures, most of it reading the body line by line in coroutines.

Per request it keeps the status, time to first byte, total time and, for streams, the arrival
time of each SSE data line (to check that chunks are relayed as they come, not in bursts).
"""

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import urlsplit

import httptools


@dataclass
class Sample:
    ok: bool
    status: int
    ttfb: float  # seconds from send to the first body byte (streams) or the full body
    total: float
    chunk_times: list[float] = field(default_factory=list)
    error: str = ""


@dataclass
class RunResult:
    samples: list[Sample]
    wall: float

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.ok]

    @property
    def errors(self) -> int:
        return len(self.samples) - len(self.ok)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def body_for(model: str, stream: bool, max_tokens: int = 64) -> bytes:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Say something short for the benchmark."}],
        "max_tokens": max_tokens,
        "stream": stream,
    }
    if stream:
        # Every target is asked for the usage chunk: the gateway always asks its upstream for
        # one (it bills from it), and the demo upstream sends it one chunk interval after the
        # finish chunk, so without this the references' streams were one interval shorter.
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time, its responses parsed
    by httptools as the bytes arrive: each SSE data line is timed when it reaches the client,
    not when a reader coroutine next gets a turn of the loop."""

    def __init__(self, stream: bool) -> None:
        self.stream = stream
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future | None = None
        self.lost = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.keep_alive = False
        self.first: float | None = None
        self.chunk_times: list[float] = []
        self.finished_stream = False
        self.partial = b""

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail(exc or ConnectionResetError("the server closed the connection"))

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        if not self.stream:
            return
        lines = (self.partial + body).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            if line.startswith(b"data:"):
                self.chunk_times.append(now)
                if line.strip() == b"data: [DONE]":
                    self.finished_stream = True

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()  # reset once the parser moves on
        if self.done is not None and not self.done.done():
            self.done.set_result(time.perf_counter())

    def _fail(self, exc: BaseException) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(exc)

    async def exchange(self, request: bytes, started: float) -> Sample:
        self._reset()
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        end = await self.done
        if not self.stream or self.status != 200:
            return Sample(self.status == 200, self.status, end - started, end - started)
        return Sample(
            self.finished_stream,
            self.status,
            (self.first or end) - started,
            end - started,
            self.chunk_times,
            "" if self.finished_stream else "stream ended without [DONE]",
        )


async def run_closed_loop(
    url: str,
    *,
    concurrency: int,
    duration: float,
    stream: bool,
    model: str,
    token: str = "",
    max_requests: int | None = None,
    timeout: float = 60.0,
    get: bool = False,
) -> RunResult:
    """``get``: send ``GET url`` instead of a chat completion (``stream`` and ``model`` unused)."""
    target = urlsplit(url)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    if get:
        request = f"GET {target.path} HTTP/1.1\r\nHost: {target.netloc}\r\n{auth}\r\n".encode()
    else:
        body = body_for(model, stream)
        request = (
            f"POST {target.path} HTTP/1.1\r\nHost: {target.netloc}\r\n"
            f"Content-Type: application/json\r\n{auth}Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
    loop = asyncio.get_running_loop()
    samples: list[Sample] = []
    deadline = time.perf_counter() + duration
    budget = [max_requests if max_requests is not None else 10**9]

    async def client() -> None:
        conn: _Connection | None = None
        try:
            while time.perf_counter() < deadline and budget[0] > 0:
                budget[0] -= 1
                started = time.perf_counter()
                try:
                    if conn is None or conn.lost:
                        _, conn = await loop.create_connection(
                            partial(_Connection, stream), target.hostname, target.port
                        )
                    async with asyncio.timeout(timeout):
                        sample = await conn.exchange(request, started)
                    if not conn.keep_alive:
                        conn.transport.close()
                        conn = None
                except (OSError, TimeoutError, httptools.HttpParserError) as exc:
                    now = time.perf_counter()
                    error = type(exc).__name__
                    sample = Sample(False, 0, now - started, now - started, error=error)
                    if conn is not None:
                        conn.transport.close()
                    conn = None
                samples.append(sample)
        finally:
            if conn is not None:
                conn.transport.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return RunResult(samples, wall)


def summarise(result: RunResult, stream: bool) -> dict:
    ok = result.ok
    totals = [s.total * 1000 for s in ok]
    out = {
        "requests": len(result.samples),
        "errors": result.errors,
        "error_kinds": sorted({s.error or str(s.status) for s in result.samples if not s.ok}),
        "throughput_rps": len(ok) / result.wall if result.wall else 0.0,
        "p50_ms": percentile(totals, 50),
        "p95_ms": percentile(totals, 95),
        "p99_ms": percentile(totals, 99),
    }
    if stream:
        ttfbs = [s.ttfb * 1000 for s in ok]
        out.update(
            ttfb_p50_ms=percentile(ttfbs, 50),
            ttfb_p95_ms=percentile(ttfbs, 95),
            ttfb_p99_ms=percentile(ttfbs, 99),
        )
    return out


def chunk_gaps_ms(result: RunResult) -> list[float]:
    """Gaps between consecutive content chunks at the client, leaving out the first event
    (role chunk) and the tail (finish chunk, summary, [DONE]), which the gateway holds for
    settlement by design."""
    gaps: list[float] = []
    for s in result.ok:
        times = s.chunk_times[1:-3]
        gaps.extend((b - a) * 1000 for a, b in zip(times, times[1:], strict=False))
    return gaps


def cadence(result: RunResult, interval_ms: float) -> dict:
    gaps = chunk_gaps_ms(result)
    if not gaps:
        return {"gaps": 0}
    bursts = sum(1 for g in gaps if g < interval_ms / 4)
    return {
        "configured_interval_ms": interval_ms,
        "gaps": len(gaps),
        "gap_p5_ms": percentile(gaps, 5),
        "gap_p50_ms": statistics.median(gaps),
        "gap_p95_ms": percentile(gaps, 95),
        "coalesced_fraction": bursts / len(gaps),
    }
