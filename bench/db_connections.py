"""Database connections of sync views, measured: two code trees of the gateway back to back.

Not part of ``make bench``. Each variant (a directory holding a checkout of this repository)
runs as one production worker (uvicorn, DEBUG off) on the same PostgreSQL database, against the
demo upstream, and gets the same closed-loop load, rounds interleaved: ``GET /api/v1/credits``
(a sync view) at concurrency 1 and 16, and chat completions (the ASGI hot path) at 16, plain
and streamed. Per load it reports the gateway's CPU per request, latency, the PostgreSQL
sessions it opened per request (pg_stat_database.sessions) and the most connections it held.

    DATABASE_URL=postgres://... .venv/bin/python bench/db_connections.py OLD_DIR NEW_DIR
"""

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
from functools import partial
from pathlib import Path

import psycopg

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402
from run import cpu_seconds, free_port, run_load, wait_for_port  # noqa: E402

PY = sys.executable
EMAIL = "bench-connections@lowrouter.local"
APP = "lowrouter-bench-conns"
LOADS = [
    # name, path, concurrency, stream, get
    ("credits c1", "/api/v1/credits", 1, False, True),
    ("credits c16", "/api/v1/credits", 16, False, True),
    ("chat c16", "/api/v1/chat/completions", 16, False, False),
    ("stream c16", "/api/v1/chat/completions", 16, True, False),
]


def _pg(url: str) -> psycopg.Connection:
    return psycopg.connect(url.replace("postgres://", "postgresql://"), autocommit=True)


def _sessions(db: psycopg.Connection) -> int:
    db.execute("SELECT pg_stat_clear_snapshot()")
    row = db.execute(
        "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()
    return row[0]


def _held(db: psycopg.Connection) -> int:
    return db.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APP]
    ).fetchone()[0]


class _Peak:
    def __init__(self, url: str) -> None:
        self.db = _pg(url)
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, _held(self.db))
            self.stop.wait(0.05)

    def __enter__(self) -> "_Peak":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.db.close()


def _manage(code: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [PY, "manage.py", *args], cwd=code, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return done.stdout


def _start(args: list[str], code: Path, env: dict[str, str], port: int) -> subprocess.Popen:
    log = Path(env["LOWROUTER_DATA_DIR"]) / f"server-{port}.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(args, cwd=code, env=env, stdout=sink, stderr=sink)
    wait_for_port(port, proc)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def measure_variant(
    code: Path, env: dict[str, str], loads: list[tuple], duration: float
) -> dict[str, dict]:
    port = free_port()
    gateway = _start(
        [PY, "-m", "uvicorn", "lowrouter.asgi:application", "--port", str(port)]
        + ["--no-access-log", "--log-level", "warning", "--lifespan", "off"],
        code,
        {**env, "PGAPPNAME": APP},
        port,
    )
    base = f"http://127.0.0.1:{port}"
    results = {}
    try:
        db = _pg(env["DATABASE_URL"])
        for name, path, concurrency, stream, get in loads:
            load = partial(
                loadgen.run_closed_loop,
                base + path,
                concurrency=concurrency,
                stream=stream,
                model="bench/echo",
                token=env["BENCH_TOKEN"],
                get=get,
            )
            run_load(load(duration=1.0))  # warm-up
            sessions, cpu = _sessions(db), cpu_seconds(gateway.pid)
            with _Peak(env["DATABASE_URL"]) as peak:
                result = run_load(load(duration=duration))
            cpu = cpu_seconds(gateway.pid) - cpu
            count = len(result.samples)
            summary = loadgen.summarise(result, stream)
            results[name] = {
                "requests": count,
                "errors": result.errors,
                "cpu_ms_per_request": cpu * 1000 / count,
                "p50_ms": summary["p50_ms"],
                "p95_ms": summary["p95_ms"],
                "sessions_per_request": (_sessions(db) - sessions) / count,
                "peak_connections": peak.peak,
            }
        db.close()
    finally:
        _stop(gateway)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("trees", nargs=2, type=Path, help="two checkouts: before, after")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--only", default="", help="run only the loads whose name has this")
    args = parser.parse_args()
    loads = [load for load in LOADS if args.only in load[0]]
    tmp = tempfile.mkdtemp(prefix="lowrouter-bench-conns-")
    env = {
        **os.environ,
        "DEBUG": "False",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "False",
        "LOG_LEVEL": "WARNING",
        "LOWROUTER_DATA_DIR": tmp,
    }
    up_port = free_port()
    newest = args.trees[1]
    upstream = _start(
        [PY, "manage.py", "demo_upstream", "--port", str(up_port)], newest, env, up_port
    )
    try:
        catalogue = Path(tmp) / "catalogue.yaml"
        catalogue.write_text(
            (BENCH / "catalogue.yaml")
            .read_text()
            .replace("BENCH_UPSTREAM_URL", f"http://127.0.0.1:{up_port}/v1")
        )
        _manage(newest, env, "migrate", "--noinput", "-v0")
        _manage(newest, env, "catalog_sync", str(catalogue))
        _manage(newest, env, "create_account", EMAIL, "--credits", "100000000", "--verified")
        key = _manage(newest, env, "create_key", EMAIL, "--name", "conns")
        env["BENCH_TOKEN"] = key.strip().splitlines()[-1]
        rounds: dict[str, list[dict]] = {str(t): [] for t in args.trees}
        for _ in range(args.rounds):
            for tree in args.trees:
                rounds[str(tree)].append(measure_variant(tree, env, loads, args.duration))
    finally:
        _stop(upstream)
    report = {}
    for tree, runs in rounds.items():
        report[tree] = {
            load: {
                field: statistics.median(run[load][field] for run in runs)
                for field in runs[0][load]
            }
            for load, *_ in loads
        }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
