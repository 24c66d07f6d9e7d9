"""Server time of the console's pages for an account with 100,000 generation records.

    .venv/bin/python bench/console.py [--records 100000] [--renders 15]

Creates a dedicated PostgreSQL database (``lowrouter_console_bench``, recreated), migrates it,
loads the default catalogue, bulk-inserts the records of one account spread over 13 months
(several models, keys, providers and regions, some failed), builds their daily aggregates with
the reconciliation that checks them in production (``billing.usage.reconcile_daily_usage``),
then renders each console page through Django's request handling and reports the median and
the worst server time. Writes ``bench/results/console.md``. The target is 100 ms per page.
"""

import argparse
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = "lowrouter_console_bench"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGET_MS = 100.0


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {DB}")


def setup_django() -> None:
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DB}"
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lowrouter.settings")
    os.environ["DEBUG"] = "False"
    os.environ.setdefault("SECRET_KEY", "bench-" + "x" * 60)
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    os.environ["SECURE_SSL_REDIRECT"] = "False"
    import django

    django.setup()


def load(records: int) -> tuple[object, str]:
    from decimal import Decimal

    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from billing.ids import new_generation_id
    from billing.models import Generation
    from billing.onboarding import create_account
    from billing.usage import reconcile_daily_usage
    from catalog.catalogue_sync import sync_catalogue
    from keys.actions import create_key

    call_command("migrate", verbosity=0)
    sync_catalogue(settings.LOWROUTER_CATALOGUE_FILE)
    user = create_account(email="bench-console@example.com", credits=Decimal("100000"))
    keys = [create_key(account=user, name=f"key-{i}")[0] for i in range(4)]
    rng = random.Random(7)
    slices = [
        ("openai/gpt-4o-mini", "openai", "us-east"),
        ("mistral/mistral-small-latest", "mistral", "eu-west"),
        ("scaleway/llama-3.3-70b-instruct", "scaleway", "eu-west"),
        ("deepseek/deepseek-chat", "deepseek", "cn-east"),
        ("anthropic/claude-haiku-4-5", "anthropic", "us-east"),
    ]
    now = datetime.now(UTC)
    span = timedelta(days=396).total_seconds()
    batch = []
    last_id = ""
    for _ in range(records):
        model, provider, region = rng.choice(slices)
        created = now - timedelta(seconds=rng.random() * span)
        prompt, completion = rng.randint(20, 4000), rng.randint(1, 1500)
        ok = rng.random() > 0.02
        last_id = new_generation_id()
        batch.append(
            Generation(
                id=last_id,
                account=user,
                key=rng.choice(keys),
                created_at=created,
                completed_at=created + timedelta(milliseconds=400),
                requested_model=model,
                resolved_model=model,
                provider=provider if ok else "",
                region=region if ok else "",
                prompt_tokens=prompt if ok else 0,
                completion_tokens=completion if ok else 0,
                total_tokens=prompt + completion if ok else 0,
                latency_ms=rng.randint(80, 3000),
                cost_micros=(prompt + 3 * completion) * 10 if ok else 0,
                status="ok" if ok else "upstream_error",
                energy_wh=(prompt + completion) * 2e-4 if ok else None,
                carbon_g=(prompt + completion) * 5e-5 if ok else None,
                eco_accuracy="accurate" if ok else "",
                methodology_version="v0.4-2026-01" if ok else "",
                routing_trace={"winner_reason": "cheapest", "candidates": [], "attempts": []},
            )
        )
        if len(batch) == 5000:
            Generation.objects.bulk_create(batch)
            batch = []
    Generation.objects.bulk_create(batch)
    reconcile_daily_usage(first=(now - timedelta(days=400)).date(), last=now.date(), fix=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # what autovacuum does after a bulk load
    return user, last_id


def render(client: object, path: str, renders: int) -> list[float]:
    times = []
    for _ in range(renders):
        started = time.perf_counter()
        response = client.get(path)
        if path.endswith(".csv"):
            for _chunk in response.streaming_content:
                pass
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--renders", type=int, default=15)
    args = parser.parse_args()
    recreate_database()
    setup_django()
    from django.test import Client

    user, gen_id = load(args.records)
    client = Client()
    client.force_login(user)
    pages = {
        "dashboard (default 30 days)": "/dashboard",
        "dashboard (a model, a year)": "/dashboard?model=openai/gpt-4o-mini&start="
        + (datetime.now(UTC) - timedelta(days=365)).date().isoformat(),
        "dashboard sorted by cost": "/dashboard?sort=-cost",
        "transaction": f"/dashboard/transactions/{gen_id}",
        "credits": "/dashboard/credits",
    }
    stamp = f"{datetime.now(UTC):%Y-%m-%d %H:%M}"
    lines = [
        "# Console pages: server time",
        "",
        f"{args.records:,} generation records on one account (PostgreSQL), {args.renders} renders"
        f" each after one warm-up; target {TARGET_MS:.0f} ms. Run at {stamp} UTC.",
        "",
        "| page | median ms | worst ms | met |",
        "|---|---|---|---|",
    ]
    for name, path in pages.items():
        render(client, path, 1)
        times = render(client, path, args.renders)
        median = statistics.median(times)
        met = "yes" if median <= TARGET_MS else "NO"
        lines.append(f"| {name} | {median:.1f} | {max(times):.1f} | {met} |")
    export = render(client, "/dashboard/export.csv", 1)[0]
    lines += ["", f"CSV export of the default range (streamed, all rows read): {export:.0f} ms."]
    text = "\n".join(lines) + "\n"
    (ROOT / "bench" / "results" / "console.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
