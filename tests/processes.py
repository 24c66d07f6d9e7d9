"""Gateway processes for tests that need more than the in-process server: two web processes
sharing a database and Redis, or a gateway on a database the test restarts.

Each is ``uvicorn lowrouter.asgi:application`` in its own process, as one production worker
runs it. Its output goes to a file (a pipe nobody reads would stall it) whose tail is shown if
it fails to start.
"""

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from django.db import connection

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


def shared_database_url() -> str:
    """The URL of the database this test run uses (PostgreSQL), for a process to share it."""
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@dataclass
class GatewayProcess:
    proc: subprocess.Popen
    url: str
    log: Path

    @property
    def api(self) -> str:
        return self.url + "/api/v1"

    def wait_ready(self, timeout: float = 60) -> "GatewayProcess":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                httpx.get(self.api + "/models", timeout=2)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        tail = self.log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"the gateway process did not start:\n{tail}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.log.unlink(missing_ok=True)


def start_gateway_process(database_url: str, **env: str) -> GatewayProcess:
    """Start a gateway process on ``database_url``; ``env`` adds or overrides variables."""
    port = free_port()
    fd, log = tempfile.mkstemp(prefix="lowrouter-gateway-", suffix=".log")
    with os.fdopen(fd, "wb") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "lowrouter.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
                "--log-level",
                "warning",
                "--lifespan",
                "off",
            ],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING", **env},
            stdout=sink,
            stderr=sink,
        )
    return GatewayProcess(proc, f"http://127.0.0.1:{port}", Path(log))


def manage(*args: str, **env: str) -> str:
    """Run a management command in its own process (``env`` adds or overrides variables) and
    return what it printed; a failure raises with its error output."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout
