"""catalog_sync: an idempotent, all-or-nothing upsert of a catalogue file."""

from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from catalog.catalogue import CatalogueError
from catalog.catalogue_sync import sync_catalogue
from catalog.models import Model, Offering, PriceChange, Provider
from catalog.snapshot import load_snapshot

pytestmark = pytest.mark.django_db

SMALL = """
version: 1
providers:
  - id: local-vllm
    name: vLLM on the GPU box
    base_url: http://10.0.0.5:8000/v1
    requires_credential: false
    billing_currency: EUR
  - id: acme
    name: Acme
    base_url: https://api.acme.example/v1
    credential_env: ACME_TEST_KEY
    billing_currency: EUR
models:
  - id: local/llama-8b
    display_name: Llama 8B
    owner: meta
    context_window: 8192
    max_output_tokens: 2048
    capabilities: [tool_use, streaming]
    active_params_b: 8
    params_accuracy: gross
    platform_fee_per_1m: "0.05"
    offerings:
      - {provider: local-vllm, region: local, upstream_model: llama-8b,
         prompt_price: 0.10, completion_price: "0.20"}
      - {provider: acme, region: eu-west, upstream_model: llama-8b,
         prompt_price: "0.30", completion_price: "0.60"}
"""


def write(tmp_path: Path, text: str, name: str = "cat.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def rows() -> list[tuple]:
    return [
        *Provider.objects.values_list(),
        *Model.objects.values_list(),
        *Offering.objects.values_list(),
    ]


def test_syncing_the_same_file_twice_leaves_the_same_rows(tmp_path: Path) -> None:
    path = write(tmp_path, SMALL)
    first = sync_catalogue(path)
    before = rows()
    second = sync_catalogue(path)
    assert first.created == {"provider": 2, "model": 1, "offering": 2}
    assert second.created == {"provider": 0, "model": 0, "offering": 0}
    assert second.updated == {"provider": 0, "model": 0, "offering": 0}
    assert rows() == before
    assert Offering.objects.get(provider_id="local-vllm").prompt_price == Decimal("0.10")


def test_default_catalogue_loads_and_only_keyless_providers_are_usable(monkeypatch) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "DEEPSEEK_API_KEY", "SCW_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    report = sync_catalogue(settings.LOWROUTER_CATALOGUE_FILE)
    assert report.created["provider"] >= 11
    demo = Provider.objects.get(id="demo")
    assert demo.is_demo and not demo.requires_credential and demo.billing_currency == "EUR"
    small = Model.objects.get(id="demo/echo-small")
    assert small.params_nominal and small.active_params_b == 3
    snap = load_snapshot()
    usable = {o.provider_id for m in snap.models.values() for o in m.offerings if o.usable}
    assert usable == {"demo"}
    scaleway = snap.model("scaleway/llama-3.3-70b-instruct").offerings[0]
    assert scaleway.unavailable_reason == "provider_not_configured"
    deepseek = Provider.objects.get(id="deepseek")
    assert deepseek.data_handling["launch_status"] == "Live"


def test_env_var_credential_makes_the_provider_usable(tmp_path: Path, monkeypatch) -> None:
    sync_catalogue(write(tmp_path, SMALL))
    monkeypatch.delenv("ACME_TEST_KEY", raising=False)
    acme = load_snapshot().model("local/llama-8b").offerings
    assert {o.provider_id: o.unavailable_reason for o in acme}["acme"] == "provider_not_configured"
    monkeypatch.setenv("ACME_TEST_KEY", "sk-test-123")
    offerings = {o.provider_id: o for o in load_snapshot().model("local/llama-8b").offerings}
    assert offerings["acme"].usable
    assert offerings["acme"].credential == "sk-test-123"
    assert offerings["local-vllm"].usable and offerings["local-vllm"].credential is None


@pytest.mark.parametrize(
    ("needle", "replacement", "message"),
    [
        (
            "billing_currency: EUR\n  - id: acme",
            "billing_currency: GBP\n  - id: acme",
            "provider 'local-vllm': field 'billing_currency'",
        ),
        ("prompt_price: 0.10", "prompt_price: -1", "field 'prompt_price'"),
        ("prompt_price: 0.10", "prompt_price: 5000", "sane bound"),
        ("prompt_price: 0.10", "prompt_price: abc", "must be a number"),
        ("provider: acme,", "provider: nobody,", "field 'provider'"),
        ("max_output_tokens: 2048", "max_output_tokens: 99999", "field 'max_output_tokens'"),
        ("credential_env: ACME_TEST_KEY", "credential: sk-secret", "field 'credential'"),
        ("credential_env: ACME_TEST_KEY", "credential_env: not a name", "field 'credential_env'"),
        ("base_url: https://api.acme.example/v1", "base_url: ftp://x", "field 'base_url'"),
        (
            "capabilities: [tool_use, streaming]",
            "capabilities: [telepathy]",
            "field 'capabilities'",
        ),
        ("context_window: 8192", "context_window: 8192\n    colour: blue", "field 'colour'"),
    ],
)
def test_invalid_entries_are_refused_with_the_entry_and_field(
    tmp_path: Path, needle: str, replacement: str, message: str
) -> None:
    assert needle in SMALL
    path = write(tmp_path, SMALL.replace(needle, replacement, 1))
    with pytest.raises(CatalogueError, match=message.replace("(", r"\(")):
        sync_catalogue(path)
    assert not Provider.objects.exists()  # all or nothing


def test_a_deprecated_model_needs_a_sunset_date(tmp_path: Path) -> None:
    text = SMALL.replace("platform_fee_per_1m", "lifecycle: deprecated\n    platform_fee_per_1m")
    with pytest.raises(CatalogueError, match="model 'local/llama-8b': field 'sunset_at'"):
        sync_catalogue(write(tmp_path, text))
    text = text.replace("lifecycle: deprecated", "lifecycle: deprecated\n    sunset_at: 2027-01-31")
    sync_catalogue(write(tmp_path, text))
    assert Model.objects.get().sunset_at.isoformat() == "2027-01-31T00:00:00+00:00"


def test_a_resync_keeps_an_operator_soft_disable(tmp_path: Path) -> None:
    path = write(tmp_path, SMALL)
    sync_catalogue(path)
    Provider.objects.filter(id="acme").update(status="unavailable")
    Offering.objects.filter(provider_id="local-vllm").update(enabled=False)
    sync_catalogue(path)
    assert Provider.objects.get(id="acme").status == "unavailable"
    assert not Offering.objects.get(provider_id="local-vllm").enabled


def test_new_offerings_start_their_price_history(tmp_path: Path) -> None:
    sync_catalogue(write(tmp_path, SMALL))
    assert PriceChange.objects.filter(status="applied").count() == 2


def test_the_command_prints_a_summary_and_defaults_to_the_setting(tmp_path: Path, settings) -> None:
    settings.LOWROUTER_CATALOGUE_FILE = str(write(tmp_path, SMALL))
    out = StringIO()
    call_command("catalog_sync", stdout=out)
    assert "providers: 2 created" in out.getvalue()
    assert "offerings: 2 created" in out.getvalue()
    with pytest.raises(CommandError, match="cannot read"):
        call_command("catalog_sync", str(tmp_path / "missing.yaml"), stdout=StringIO())


def test_json_catalogues_are_accepted(tmp_path: Path) -> None:
    import json

    import yaml

    path = write(tmp_path, json.dumps(yaml.safe_load(SMALL)), "cat.json")
    assert sync_catalogue(path).created["offering"] == 2
