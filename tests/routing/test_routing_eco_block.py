"""The eco block on responses and records, its omission cases, and the reproducibility path."""

from io import StringIO

import httpx
import pytest
from django.core.management import call_command
from openai import OpenAI

from billing.models import Generation
from catalog.models import Model
from catalog.snapshot import mark_catalog_changed
from eco.models import MethodologyVersion

ECO_FIELDS = {"energy_wh", "carbon_g", "carbon_per_1k_tokens_g", "accuracy", "methodology_version"}
BODY = {"model": "demo/echo-small", "messages": [{"role": "user", "content": "eco please"}]}


@pytest.fixture
def client(gateway, funded, catalogue) -> OpenAI:
    return OpenAI(base_url=gateway.api, api_key=funded.token, max_retries=0)


def test_non_streamed_response_has_the_five_eco_fields_and_the_record_matches(client):
    resp = client.chat.completions.create(**BODY)
    eco = resp.model_extra["lowrouter"]["eco"]
    assert set(eco) >= ECO_FIELDS
    assert eco["methodology_version"] == "v0.4-2026-01"
    gen = Generation.objects.get(pk=resp.model_extra["lowrouter"]["generation_id"])
    assert gen.energy_wh == pytest.approx(eco["energy_wh"])
    assert gen.carbon_g == pytest.approx(eco["carbon_g"])
    assert gen.methodology_version == eco["methodology_version"]
    # The documented formula, by hand: (alpha * P + beta) * total_tokens, P = 3B here.
    expected = (8.91e-5 * 3 + 1.43e-3) * resp.usage.total_tokens
    assert eco["energy_wh"] == pytest.approx(expected)


def test_streamed_summary_carries_the_eco_block(client):
    summary = None
    for chunk in client.chat.completions.create(**BODY, stream=True):
        if chunk.model_extra and "lowrouter" in chunk.model_extra:
            summary = chunk.model_extra["lowrouter"]
    assert summary is not None
    assert set(summary["eco"]) >= ECO_FIELDS


def test_eco_is_omitted_when_the_parameter_count_is_unknown(client):
    Model.objects.filter(pk="demo/echo-small").update(active_params_b=None)
    mark_catalog_changed()
    resp = client.chat.completions.create(**BODY)
    assert "eco" not in resp.model_extra["lowrouter"]
    gen = Generation.objects.get(pk=resp.model_extra["lowrouter"]["generation_id"])
    assert gen.energy_wh is None
    assert gen.methodology_version == ""


def test_generation_and_metrics_endpoints_expose_the_inputs(client, gateway, funded):
    resp = client.chat.completions.create(**BODY)
    gen_id = resp.model_extra["lowrouter"]["generation_id"]
    headers = {"Authorization": f"Bearer {funded.token}"}
    record = httpx.get(f"{gateway.api}/generation/{gen_id}", headers=headers).json()
    inputs = record["eco"]["inputs"]
    assert float(inputs["active_params_b"]) == 3.0
    assert inputs["grid_g_per_kwh"] > 0
    metrics = httpx.get(f"{gateway.api}/metrics/{gen_id}", headers=headers)
    assert metrics.status_code == 200
    assert metrics.json()["eco"]["carbon_g"] == pytest.approx(record["eco"]["carbon_g"])


def test_recompute_command_reproduces_a_stored_generation(client):
    resp = client.chat.completions.create(**BODY)
    out = StringIO()
    call_command("eco_recompute", resp.model_extra["lowrouter"]["generation_id"], stdout=out)
    assert "mismatch" not in out.getvalue().lower()


def test_changing_the_current_version_affects_only_new_generations(client):
    first = client.chat.completions.create(**BODY)
    MethodologyVersion.objects.get(version="ecologits-0.11.3").make_current()
    from eco.estimate import mark_eco_changed

    mark_eco_changed()
    mark_catalog_changed()
    second = client.chat.completions.create(**BODY)
    g1 = Generation.objects.get(pk=first.model_extra["lowrouter"]["generation_id"])
    g2 = Generation.objects.get(pk=second.model_extra["lowrouter"]["generation_id"])
    assert g1.methodology_version == "v0.4-2026-01"
    assert g2.methodology_version == "ecologits-0.11.3"
    assert second.model_extra["lowrouter"]["eco"]["methodology_version"] == "ecologits-0.11.3"


def test_models_api_reports_eco_per_region(gateway, catalogue):
    model = httpx.get(gateway.api + "/models/demo/echo-small").json()
    assert model["eco"]["active_params_b"] == 3.0
    assert model["eco"]["accuracy"] == "gross"
    expected_wh = (8.91e-5 * 3 + 1.43e-3) * 1000
    assert model["eco"]["energy_wh_per_1k_tokens"] == pytest.approx(expected_wh)
    (offering,) = model["offerings"]
    assert offering["region"] == "local"
    assert offering["eco"]["carbon_g_per_1k_tokens"] > 0
    assert offering["eco"]["energy_wh_per_1k_tokens"] == pytest.approx(expected_wh)
