"""A bounded closed-loop load generator: C clients, each sending its next request as soon as
the previous one finished, for a fixed duration (or a fixed count). aiohttp on one event loop.

Per request it keeps the status, time to first byte, total time and, for streams, the arrival
time of each SSE data line (to check that chunks are relayed as they come, not in bursts).
"""

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field

import aiohttp


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


async def one_request(
    session: aiohttp.ClientSession, url: str, headers: dict, body: bytes, stream: bool
) -> Sample:
    started = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            if not stream or resp.status != 200:
                await resp.read()
                now = time.perf_counter()
                return Sample(resp.status == 200, resp.status, now - started, now - started)
            ttfb = None
            chunks: list[float] = []
            done = False
            async for line in resp.content:
                now = time.perf_counter()
                if ttfb is None:
                    ttfb = now - started
                if line.startswith(b"data:"):
                    chunks.append(now)
                    if line.strip() == b"data: [DONE]":
                        done = True
            end = time.perf_counter()
            return Sample(
                done,
                resp.status,
                (ttfb or end - started),
                end - started,
                chunks,
                "" if done else "stream ended without [DONE]",
            )
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        now = time.perf_counter()
        return Sample(False, 0, now - started, now - started, error=type(exc).__name__)


async def run_closed_loop(
    url: str,
    *,
    concurrency: int,
    duration: float,
    stream: bool,
    model: str,
    token: str = "",
    max_requests: int | None = None,
) -> RunResult:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = body_for(model, stream)
    samples: list[Sample] = []
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        deadline = time.perf_counter() + duration
        budget = [max_requests if max_requests is not None else 10**9]

        async def client() -> None:
            while time.perf_counter() < deadline and budget[0] > 0:
                budget[0] -= 1
                samples.append(await one_request(session, url, headers, body, stream))

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
