"""`make bench`: the gateway as production runs it, against the demo upstream, next to references.

One command, bounded in time (about 6-8 minutes on a 2-core machine):

1. Picks the database: PostgreSQL + Redis when both answer on 127.0.0.1 (a dedicated
   ``lowrouter_bench`` database, recreated and migrated, and Redis db 13), else the embedded
   default in a temporary LOWROUTER_DATA_DIR. The report says which.
2. Starts the demo upstream (``manage.py demo_upstream``), the gateway under gunicorn with uvicorn
   workers (one per core, DEBUG off) and the minimal passthrough proxy (bench/passthrough.py).
3. Loads a one-model catalogue, a funded account and a key.
4. Runs closed-loop load (bench/loadgen.py) for non-streaming and streaming requests at
   concurrency 1, 16 and 64 against: the upstream directly, the passthrough, the gateway.
   Rounds are interleaved and each figure is the median of the rounds.
5. Holds 500 concurrent streams open in one gateway process and reports its RSS.
6. Writes bench/results/latest.json and latest.md.

    .venv/bin/python bench/run.py [--rounds 3] [--duration 4] [--profile]
"""

import argparse
import contextlib
import json
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TypeVar

import psutil
import uvloop

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402

PY = sys.executable
CORES = os.cpu_count() or 1
CHUNK_INTERVAL_MS = 10.0
COMPLETION_TOKENS = 16
MODEL = "bench/echo"
EMAIL = "bench@lowrouter.local"
PG_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"
PG_BENCH = "postgres://postgres@127.0.0.1:5432/lowrouter_bench"
REDIS_BENCH = "redis://127.0.0.1:6379/13"
T = TypeVar("T")
DATABASE_PROCESSES = {"postgres": "postgresql", "redis-server": "redis"}

TARGETS = {
    "gateway_max_cpu_ms_per_request": 1.8,
    "gateway_max_added_p50_ms_c1": 3.0,
    "stream_c64_min_throughput_ratio": 0.80,
    "stream_c64_max_added_ttfb_p50_ms": 5.0,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port} after {timeout}s")


def _reachable(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


@dataclass
class Env:
    kind: str  # "postgresql+redis" | "sqlite (embedded default)"
    vars: dict[str, str]
    tmpdir: str
    server_versions: dict[str, str] = field(default_factory=dict)


def choose_env(force_embedded: bool) -> Env:
    tmpdir = tempfile.mkdtemp(prefix="lowrouter-bench-")
    base = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lowrouter.settings",
        "DEBUG": "False",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "ALLOWED_HOSTS": "127.0.0.1",
        # TLS is terminated in front of the app in production; here there is no proxy.
        "SECURE_SSL_REDIRECT": "False",
        "LOG_LEVEL": "WARNING",
        "LOWROUTER_DATA_DIR": tmpdir,
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("DATABASE_URL", "REDIS_URL"):
        base.pop(name, None)
    if not force_embedded and _reachable(5432) and _reachable(6379):
        import psycopg
        import redis

        with psycopg.connect(
            PG_ADMIN.replace("postgres://", "postgresql://"), autocommit=True
        ) as c:
            c.execute("DROP DATABASE IF EXISTS lowrouter_bench WITH (FORCE)")
            c.execute("CREATE DATABASE lowrouter_bench")
            pg_version = c.execute("SHOW server_version").fetchone()[0]
        redis_version = redis.Redis.from_url(REDIS_BENCH).info("server")["redis_version"]
        return Env(
            "postgresql+redis",
            {**base, "DATABASE_URL": PG_BENCH, "REDIS_URL": REDIS_BENCH},
            tmpdir,
            {"postgresql": pg_version, "redis": redis_version},
        )
    return Env("sqlite (embedded default)", base, tmpdir, {})


def manage(env: Env, *args: str) -> str:
    out = subprocess.run(
        [PY, "manage.py", *args], cwd=ROOT, env=env.vars, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return out.stdout


class Processes:
    """Every server the bench starts, stopped (whole process tree) on exit."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, args: list[str], env: Env, port: int) -> subprocess.Popen:
        # Output goes to a file: a full pipe would stall a server mid-benchmark.
        log = Path(env.tmpdir) / f"server-{port}.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(args, cwd=ROOT, env=env.vars, stdout=sink, stderr=sink)
        self.procs.append(proc)
        try:
            wait_for_port(port, proc)
        except RuntimeError:
            err = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{args[:3]} did not start: {err}") from None
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            tree = psutil.Process(proc.pid).children(recursive=True)
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            for child in tree:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)


def tree_of(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in tree_of(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


class RssSampler:
    """Samples the RSS of a process tree every 50 ms: the peak of the whole tree and of the
    largest single process."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_total = 0
        self.peak_process = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            sizes = []
            for p in tree_of(self.pid):
                with contextlib.suppress(psutil.NoSuchProcess):
                    sizes.append(p.memory_info().rss)
            self.peak_total = max(self.peak_total, sum(sizes))
            self.peak_process = max(self.peak_process, max(sizes, default=0))
            self._stop.wait(0.05)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_load(load: Coroutine[None, None, T]) -> T:
    """Run the load generator on uvloop, as the servers it measures run (uvicorn's workers, the
    passthrough, the demo upstream). On asyncio's default loop it took about 50% more of the
    cores it shares with them (0.69 against 0.46 cores at 64 streams to the upstream directly),
    and every target's latency paid for that contention, the busiest target's most."""
    return uvloop.run(load)


def post_json(url: str, data: dict) -> dict:
    req = urllib.request.Request(
        url, json.dumps(data).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@dataclass
class Target:
    name: str
    url: str
    model: str
    token: str = ""
    pid: int | None = None  # the process tree whose CPU and memory are measured


def cpu_by_group(target: Target, upstream_pid: int | None) -> dict[str, float]:
    """CPU seconds used so far by each process group sharing the machine during a scenario."""
    own = psutil.Process().cpu_times()
    groups = {"load_generator": own.user + own.system}
    if upstream_pid:
        groups["upstream"] = cpu_seconds(upstream_pid)
    if target.pid and target.pid != upstream_pid:
        groups["target"] = cpu_seconds(target.pid)
    groups["postgresql"] = groups["redis"] = 0.0
    for p in psutil.process_iter(["name"]):
        group = DATABASE_PROCESSES.get(p.info["name"])
        if group:
            with contextlib.suppress(psutil.NoSuchProcess):
                t = p.cpu_times()
                groups[group] += t.user + t.system
    t = psutil.cpu_times()
    groups["machine_idle"] = t.idle + getattr(t, "iowait", 0.0)
    groups["machine_all"] = sum(t)
    return groups


def machine_share(before: dict[str, float], after: dict[str, float], wall: float) -> dict:
    """Cores used by each group over ``wall`` seconds, and the machine's busy percentage: the
    evidence for how much of a latency figure is queueing for a core."""
    out = {
        f"cores_{name}": (after[name] - before[name]) / wall
        for name in before
        if not name.startswith("machine_")
    }
    all_ = after["machine_all"] - before["machine_all"]
    idle = after["machine_idle"] - before["machine_idle"]
    out["machine_busy_pct"] = 100 * (1 - idle / all_) if all_ > 0 else float("nan")
    return out


def measure(
    target: Target,
    *,
    concurrency: int,
    stream: bool,
    duration: float,
    upstream_pid: int | None = None,
) -> dict:
    cpu_before = cpu_seconds(target.pid) if target.pid else 0.0
    groups_before = cpu_by_group(target, upstream_pid)
    sampler = RssSampler(target.pid) if target.pid else contextlib.nullcontext()
    with sampler:
        result = run_load(
            loadgen.run_closed_loop(
                target.url,
                concurrency=concurrency,
                duration=duration,
                stream=stream,
                model=target.model,
                token=target.token,
            )
        )
    groups_after = cpu_by_group(target, upstream_pid)
    out = loadgen.summarise(result, stream)
    out.update(machine_share(groups_before, groups_after, result.wall))
    if target.pid:
        cpu = cpu_seconds(target.pid) - cpu_before
        out["cpu_ms_per_request"] = cpu * 1000 / max(1, len(result.samples))
        out["cpu_utilisation_cores"] = cpu / result.wall
        out["peak_rss_mb_tree"] = sampler.peak_total / 2**20
        out["peak_rss_mb_process"] = sampler.peak_process / 2**20
    if stream:
        out["cadence"] = loadgen.cadence(result, CHUNK_INTERVAL_MS)
    return out


def warm_up(target: Target) -> None:
    for stream in (False, True):
        result = run_load(
            loadgen.run_closed_loop(
                target.url,
                concurrency=8,
                duration=1.0,
                stream=stream,
                model=target.model,
                token=target.token,
            )
        )
        if result.errors:
            kinds = {s.error or s.status for s in result.samples if not s.ok}
            raise RuntimeError(f"warm-up against {target.name} failed: {kinds}")


def median_of(rounds: list[dict]) -> dict:
    """The median of each numeric figure over the rounds; errors are summed."""
    out: dict = {}
    for key in rounds[0]:
        values = [r[key] for r in rounds if key in r]
        if key in ("errors", "requests"):
            out[key] = sum(values)
        elif key == "error_kinds":
            out[key] = sorted({k for v in values for k in v})
        elif key == "cadence":
            out[key] = median_of(values) if values and "gap_p50_ms" in values[0] else values[0]
        elif all(isinstance(v, int | float) for v in values):
            out[key] = statistics.median(values)
    return out


def run_matrix(targets: list[Target], rounds: int, duration: float) -> dict:
    """Every scenario against every target (the first is the upstream called directly)."""
    raw: dict[str, list[dict]] = {}
    for r in range(rounds):
        for stream in (False, True):
            for c in (1, 16, 64):
                for target in targets:
                    key = f"{target.name}|{'stream' if stream else 'json'}|{c}"
                    figures = measure(
                        target,
                        concurrency=c,
                        stream=stream,
                        duration=duration,
                        upstream_pid=targets[0].pid,
                    )
                    raw.setdefault(key, []).append(figures)
                    print(
                        f"round {r + 1}/{rounds} {key:32s} "
                        f"{figures['throughput_rps']:8.1f} req/s  p50 {figures['p50_ms']:7.2f} ms"
                        f"  errors {figures['errors']}",
                        flush=True,
                    )
    return {key: median_of(values) for key, values in raw.items()}


def add_comparisons(results: dict) -> None:
    """Added latency over direct and ratios to the references, per scenario."""
    for key, figures in results.items():
        name, mode, c = key.split("|")
        if name == "direct":
            continue
        direct = results[f"direct|{mode}|{c}"]
        figures["added_p50_ms"] = figures["p50_ms"] - direct["p50_ms"]
        figures["added_p95_ms"] = figures["p95_ms"] - direct["p95_ms"]
        figures["added_p99_ms"] = figures["p99_ms"] - direct["p99_ms"]
        figures["throughput_ratio_to_direct"] = figures["throughput_rps"] / direct["throughput_rps"]
        if mode == "stream":
            figures["added_ttfb_p50_ms"] = figures["ttfb_p50_ms"] - direct["ttfb_p50_ms"]
            figures["added_ttfb_p95_ms"] = figures["ttfb_p95_ms"] - direct["ttfb_p95_ms"]
        if name == "gateway":
            ref = results[f"passthrough|{mode}|{c}"]
            figures["throughput_ratio_to_passthrough"] = (
                figures["throughput_rps"] / ref["throughput_rps"]
            )
            if ref.get("cpu_ms_per_request"):
                figures["cpu_ratio_to_passthrough"] = (
                    figures["cpu_ms_per_request"] / ref["cpu_ms_per_request"]
                )


def hold_open_streams(env: Env, procs: Processes, upstream_root: str, count: int) -> dict:
    """Open ``count`` streams at once against ONE gateway process and hold them ~4 s."""
    port = free_port()
    proc = procs.start(gunicorn_args(port, workers=1), env, port)
    token = env.vars["BENCH_TOKEN"]
    target = Target("gateway-1proc", f"http://127.0.0.1:{port}/api/v1/chat/completions", MODEL)
    target.token, target.pid = token, proc.pid
    warm_up(target)
    post_json(upstream_root + "/_demo/config", {"chunk_interval_ms": 200.0})
    try:
        cpu_before = cpu_seconds(proc.pid)
        with RssSampler(proc.pid) as sampler:
            result = run_load(
                loadgen.run_closed_loop(
                    target.url,
                    concurrency=count,
                    duration=60,
                    stream=True,
                    model=MODEL,
                    token=token,
                    max_requests=count,
                )
            )
        cpu = cpu_seconds(proc.pid) - cpu_before
    finally:
        post_json(upstream_root + "/_demo/config", {"chunk_interval_ms": CHUNK_INTERVAL_MS})
        procs.stop(proc)
    totals = [s.total for s in result.ok]
    return {
        "streams": count,
        "completed": len(result.ok),
        "errors": result.errors,
        "error_kinds": sorted({s.error or str(s.status) for s in result.samples if not s.ok}),
        "stream_seconds_p50": loadgen.percentile(totals, 50),
        "ttfb_p50_ms": loadgen.percentile([s.ttfb * 1000 for s in result.ok], 50),
        "ttfb_p99_ms": loadgen.percentile([s.ttfb * 1000 for s in result.ok], 99),
        "peak_rss_mb": sampler.peak_total / 2**20,
        "cpu_ms_per_stream": cpu * 1000 / count,
    }


def gunicorn_args(port: int, workers: int) -> list[str]:
    return [
        str(Path(PY).parent / "gunicorn"),
        "lowrouter.asgi:application",
        "-k",
        "uvicorn.workers.UvicornWorker",
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--backlog",
        "2048",
        "--log-level",
        "warning",
    ]


def machine() -> dict:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    packages = ["django", "aiohttp", "uvicorn", "gunicorn", "uvloop", "httptools", "psycopg"]
    return {
        "cpu": cpu_model,
        "cores": CORES,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": {name: version(name) for name in packages},
    }


def profile_gateway(target: Target, out: Path, seconds: int = 8) -> str | None:
    """py-spy one gateway worker under c=16 non-streaming load; return the summary path."""
    spy = Path(PY).parent / "py-spy"
    if not spy.exists() or target.pid is None:
        return None
    worker = psutil.Process(target.pid).children()[0].pid
    raw = out.with_suffix(".folded")
    spy_proc = subprocess.Popen(
        [
            *(str(spy), "record", "-p", str(worker), "-d", str(seconds), "-f", "raw"),
            *("--gil", "--nolineno", "-r", "200", "-o", str(raw)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1)
    measure(target, concurrency=16, stream=False, duration=seconds)
    spy_proc.wait(30)
    if not raw.exists():
        return None
    out.write_text(summarise_profile(raw.read_text()))
    raw.unlink()
    return out.name


def summarise_profile(folded: str, top: int = 40) -> str:
    """Inclusive share per function (counted once per stack) from py-spy's folded stacks."""
    inclusive: dict[str, int] = {}
    leaf: dict[str, int] = {}
    total = 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
        leaf[frames[-1]] = leaf.get(frames[-1], 0) + n
    lines = [f"samples: {total}", "", "inclusive % | function (file:line)"]
    for frame, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * n / total:6.1f} | {frame}")
    lines += ["", "self % | function (file:line)"]
    for frame, n in sorted(leaf.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * n / total:6.1f} | {frame}")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def servers(env: Env) -> Iterator[tuple[Processes, dict[str, Target], str]]:
    procs = Processes()
    try:
        up_port, gw_port, pt_port = free_port(), free_port(), free_port()
        upstream_root = f"http://127.0.0.1:{up_port}"
        upstream = procs.start(
            [
                PY,
                "manage.py",
                "demo_upstream",
                "--port",
                str(up_port),
                "--chunk-interval-ms",
                str(CHUNK_INTERVAL_MS),
                "--completion-tokens",
                str(COMPLETION_TOKENS),
            ],
            env,
            up_port,
        )
        catalogue = Path(env.tmpdir) / "catalogue.yaml"
        catalogue.write_text(
            (BENCH / "catalogue.yaml")
            .read_text()
            .replace("BENCH_UPSTREAM_URL", upstream_root + "/v1")
        )
        print(f"database: {env.kind}; migrating and loading the bench catalogue", flush=True)
        manage(env, "migrate", "--noinput", "-v0")
        manage(env, "catalog_sync", str(catalogue))
        manage(env, "create_account", EMAIL, "--credits", "100000000", "--verified")
        token = manage(env, "create_key", EMAIL, "--name", "bench").strip().splitlines()[-1]
        env.vars["BENCH_TOKEN"] = token
        gateway = procs.start(gunicorn_args(gw_port, CORES), env, gw_port)
        passthrough = procs.start(
            [
                PY,
                str(BENCH / "passthrough.py"),
                "--port",
                str(pt_port),
                "--upstream",
                upstream_root,
                "--processes",
                str(CORES),
            ],
            env,
            pt_port,
        )
        targets = {
            "direct": Target(
                "direct", upstream_root + "/v1/chat/completions", "echo-small", pid=upstream.pid
            ),
            "passthrough": Target(
                "passthrough",
                f"http://127.0.0.1:{pt_port}/v1/chat/completions",
                "echo-small",
                pid=passthrough.pid,
            ),
            "gateway": Target(
                "gateway",
                f"http://127.0.0.1:{gw_port}/api/v1/chat/completions",
                MODEL,
                token,
                gateway.pid,
            ),
        }
        yield procs, targets, upstream_root
    finally:
        procs.stop_all()


def verify_books(env: Env) -> str:
    """After the run: every balance equals its ledger and no hold is left."""
    code = (
        "from billing.models import Wallet, Hold\n"
        "from billing.ledger import ledger_sum\n"
        "bad = [w.account_id for w in Wallet.objects.all() "
        "if w.balance_micros != ledger_sum(w.account) or w.reserved_micros]\n"
        "print('ok' if not bad and not Hold.objects.exists() else f'MISMATCH {bad}')"
    )
    return manage(env, "shell", "-c", code).strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per scenario")
    parser.add_argument("--streams", type=int, default=500, help="concurrent streams held open")
    parser.add_argument("--embedded", action="store_true", help="force SQLite, no Redis")
    parser.add_argument("--profile", action="store_true", help="py-spy a gateway worker")
    parser.add_argument("--out", default=str(BENCH / "results"))
    args = parser.parse_args()

    started = time.monotonic()
    env = choose_env(args.embedded)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        with servers(env) as (procs, targets, upstream_root):
            for target in targets.values():
                warm_up(target)
            results = run_matrix(list(targets.values()), args.rounds, args.duration)
            add_comparisons(results)
            profile = None
            if args.profile:
                profile = profile_gateway(targets["gateway"], out_dir / "profile-gateway.txt")
            print(f"holding {args.streams} concurrent streams in one process", flush=True)
            held = hold_open_streams(env, procs, upstream_root, args.streams)
        books = verify_books(env)
    finally:
        shutil.rmtree(env.tmpdir, ignore_errors=True)

    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": env.kind,
        "server_versions": env.server_versions,
        "machine": machine(),
        "setup": {
            "gateway": f"gunicorn + uvicorn workers x{CORES}, DEBUG=False",
            "passthrough": f"bench/passthrough.py (aiohttp) x{CORES} processes",
            "upstream": (
                f"manage.py demo_upstream, latency 0 ms, {COMPLETION_TOKENS} completion tokens, "
                f"chunk interval {CHUNK_INTERVAL_MS} ms"
            ),
            "rounds": args.rounds,
            "seconds_per_scenario": args.duration,
            "load_generator": (
                "bench/loadgen.py, closed loop, one HTTP/1.1 connection per client parsed with "
                "httptools, uvloop, same machine"
            ),
        },
        "targets": TARGETS,
        "results": results,
        "open_streams": held,
        "books_after_run": books,
        "profile": profile,
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    (out_dir / "latest.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out_dir / "latest.md").write_text(render_markdown(report))
    print((out_dir / "latest.md").read_text())


def _f(value: object, digits: int = 1) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "-" if value is None else str(value)


def verdicts(report: dict) -> list[str]:
    r = report["results"]
    t = report["targets"]
    cpu = r["gateway|json|16"]["cpu_ms_per_request"]
    added = r["gateway|json|1"]["added_p50_ms"]
    ratio = r["gateway|stream|64"]["throughput_ratio_to_direct"]
    ttfb = r["gateway|stream|64"]["added_ttfb_p50_ms"]
    cad = r["gateway|stream|1"].get("cadence", {})

    def line(name: str, value: float, limit: float, ok: bool, unit: str) -> str:
        verdict = "met" if ok else f"MISSED by {abs(value - limit):.2f}{unit}"
        return f"- {name}: {value:.2f}{unit} (target {limit}{unit}): **{verdict}**"

    lim = t["gateway_max_cpu_ms_per_request"]
    out = [line("CPU per non-streaming request (c=16)", cpu, lim, cpu <= lim, " ms")]
    lim = t["gateway_max_added_p50_ms_c1"]
    out.append(line("added p50, non-streaming, c=1", added, lim, added <= lim, " ms"))
    lim = t["stream_c64_min_throughput_ratio"]
    out.append(line("streaming c=64 throughput / direct", ratio, lim, ratio >= lim, ""))
    lim = t["stream_c64_max_added_ttfb_p50_ms"]
    out.append(line("streaming c=64 added TTFB p50", ttfb, lim, ttfb <= lim, " ms"))
    if cad.get("gaps"):
        out.append(
            f"- chunk cadence (c=1): median gap {cad['gap_p50_ms']:.1f} ms for a "
            f"{cad['configured_interval_ms']:.0f} ms upstream interval; "
            f"{100 * cad['coalesced_fraction']:.1f}% of gaps under a quarter interval (bursts)"
        )
    return out


def render_markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# `make bench`: latest results",
        "",
        f"Generated {report['generated_at']} in {report['wall_seconds']} s. "
        f"Database: **{report['database']}** {report['server_versions'] or ''}.",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, {m['os']}, "
        f"Python {m['python']}; " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()) + ".",
        "",
        "Setup: " + "; ".join(f"{k}: {v}" for k, v in report["setup"].items()) + ".",
        "Each figure is the median of the rounds. Load generator, upstream and servers share the "
        "machine's cores, so absolute figures are lower than on separate hosts; the ratios to "
        "the references measured in the same run are the figures to compare.",
        "",
        "## Targets",
        "",
        *verdicts(report),
        "",
    ]
    for mode, title in (("json", "Non-streaming"), ("stream", "Streaming")):
        head = "| target | c | req/s | p50 ms | p95 ms | p99 ms | added p50 | added p99 |"
        sep = "|---|---:|---:|---:|---:|---:|---:|---:|"
        if mode == "stream":
            head += " TTFB p50 | added TTFB p50 |"
            sep += "---:|---:|"
        head += " x direct | CPU ms/req | peak RSS MB | errors |"
        sep += "---:|---:|---:|---:|"
        lines += [f"## {title}", "", head, sep]
        for c in (1, 16, 64):
            for name in ("direct", "passthrough", "gateway"):
                f = report["results"][f"{name}|{mode}|{c}"]
                row = [
                    name,
                    str(c),
                    _f(f["throughput_rps"]),
                    _f(f["p50_ms"], 2),
                    _f(f["p95_ms"], 2),
                    _f(f["p99_ms"], 2),
                    _f(f.get("added_p50_ms"), 2),
                    _f(f.get("added_p99_ms"), 2),
                ]
                if mode == "stream":
                    row += [_f(f["ttfb_p50_ms"], 2), _f(f.get("added_ttfb_p50_ms"), 2)]
                row += [
                    _f(f.get("throughput_ratio_to_direct"), 2),
                    _f(f.get("cpu_ms_per_request"), 2),
                    _f(f.get("peak_rss_mb_tree"), 0),
                    str(f["errors"]),
                ]
                lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines += [
        "## Where the machine's cores went (c=64)",
        "",
        "Cores used during each c=64 scenario by each process group on the machine, and how busy "
        f"its {CORES} cores were. When they are all busy, every hand-off (client to proxy, proxy "
        "to database, proxy to upstream, back to the client) also waits for a core.",
        "",
        "| target | mode | req/s | machine busy | load generator | upstream | proxy "
        "| PostgreSQL | Redis | PostgreSQL ms/req |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in ("json", "stream"):
        for name in ("direct", "passthrough", "gateway"):
            f = report["results"][f"{name}|{mode}|64"]
            pg = f.get("cores_postgresql")
            per_request = 1000 * pg / f["throughput_rps"] if pg and f["throughput_rps"] else None
            row = [
                name,
                mode,
                _f(f["throughput_rps"]),
                _f(f.get("machine_busy_pct"), 0) + "%",
                *(
                    _f(f.get(f"cores_{group}"), 2)
                    for group in ("load_generator", "upstream", "target", "postgresql", "redis")
                ),
                _f(per_request, 2),
            ]
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Chunk cadence (gateway, at the client)", ""]
    lines.append("| c | upstream interval ms | gap p5 | gap p50 | gap p95 | bursts |")
    lines.append("|---:|---:|---:|---:|---:|---:|")
    for c in (1, 16, 64):
        cad = report["results"][f"gateway|stream|{c}"].get("cadence", {})
        if cad.get("gaps"):
            lines.append(
                f"| {c} | {cad['configured_interval_ms']:.0f} | {cad['gap_p5_ms']:.1f} | "
                f"{cad['gap_p50_ms']:.1f} | {cad['gap_p95_ms']:.1f} | "
                f"{100 * cad['coalesced_fraction']:.1f}% |"
            )
    h = report["open_streams"]
    lines += [
        "",
        "## Open streams in one process",
        "",
        f"{h['streams']} concurrent streams (200 ms chunk interval, ~4 s each) against one "
        f"gateway worker: {h['completed']} completed, {h['errors']} errors "
        f"{h['error_kinds'] or ''}; peak RSS {h['peak_rss_mb']:.0f} MB; TTFB p50 "
        f"{h['ttfb_p50_ms']:.0f} ms, p99 {h['ttfb_p99_ms']:.0f} ms; "
        f"{h['cpu_ms_per_stream']:.2f} ms CPU per stream.",
        "",
        f"Books after the run: {report['books_after_run']} (balance == ledger, no hold left).",
    ]
    if report.get("profile"):
        lines += ["", f"Profile of one gateway worker: `{report['profile']}`."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
