"""Production settings pass Django's deployment checks and refuse insecure defaults."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_manage(*args: str, unset: tuple[str, ...] = (), **env: str) -> subprocess.CompletedProcess:
    dropped = {"DEBUG", "SECRET_KEY", *unset}
    base = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


SELLER = {
    "LOWROUTER_SELLER_NAME": "Carbonifer SAS",
    "LOWROUTER_SELLER_ADDRESS": "12 rue de la Paix, 75002 Paris",
    "LOWROUTER_SELLER_VAT_NUMBER": "FR40303265045",
    "LOWROUTER_SUPPORT_EMAIL": "support@lowrouter.example",
}


def check_deploy(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(60),
        ALLOWED_HOSTS="lowrouter.example",
        LOWROUTER_DATA_DIR=str(tmp_path),
        **env,
    )


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = check_deploy(tmp_path, **SELLER)
    assert result.returncode == 0, result.stderr + result.stdout


def test_check_deploy_fails_while_the_seller_legal_details_are_incomplete(tmp_path):
    result = check_deploy(tmp_path, **{**SELLER, "LOWROUTER_SELLER_VAT_NUMBER": ""})
    assert result.returncode != 0
    output = result.stderr + result.stdout
    assert "billing.E002" in output and "LOWROUTER_SELLER_VAT_NUMBER" in output
    nothing_set = check_deploy(tmp_path)
    for variable in ("LOWROUTER_SELLER_ADDRESS", "LOWROUTER_SUPPORT_EMAIL"):
        assert variable in nothing_set.stderr + nothing_set.stdout


def test_production_refuses_a_missing_or_weak_secret_key(tmp_path):
    missing = run_manage("check", DEBUG="false", LOWROUTER_DATA_DIR=str(tmp_path))
    assert missing.returncode != 0
    assert "SECRET_KEY must be set" in missing.stderr
    weak = run_manage("check", DEBUG="false", SECRET_KEY="short", LOWROUTER_DATA_DIR=str(tmp_path))
    assert weak.returncode != 0
    assert "too weak" in weak.stderr


def test_loading_the_settings_creates_no_directory(tmp_path):
    data_dir = tmp_path / "data"
    result = run_manage("check", LOWROUTER_DATA_DIR=str(data_dir))
    assert result.returncode == 0, result.stderr + result.stdout
    assert not data_dir.exists()


def test_the_embedded_database_creates_its_directory_on_first_connect(tmp_path):
    data_dir = tmp_path / "data"
    connect = "from django.db import connection; connection.ensure_connection()"
    result = run_manage(
        "shell", "-c", connect, unset=("DATABASE_URL",), LOWROUTER_DATA_DIR=str(data_dir)
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert (data_dir / "db.sqlite3").exists()
    assert not (data_dir / "static").exists()  # collectstatic makes it when it writes there


def test_check_deploy_reports_stripe_without_a_webhook_secret_as_an_error(tmp_path):
    result = run_manage(
        "check",
        "--deploy",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(60),
        ALLOWED_HOSTS="lowrouter.example",
        LOWROUTER_DATA_DIR=str(tmp_path),
        **SELLER,
        STRIPE_SECRET_KEY="sk_live_x",
        STRIPE_WEBHOOK_SECRET="",
    )
    assert result.returncode != 0
    assert "billing.E001" in result.stderr
    assert "STRIPE_WEBHOOK_SECRET" in result.stderr
