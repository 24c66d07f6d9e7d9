import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction

from accounts.models import User
from billing.models import Generation, GenerationStatus
from eco.estimate import EcoEstimate, estimate_request, load_eco_context, recompute
from eco.models import MethodologyVersion
from tests.conftest import make_operator

V04 = "v0.4-2026-01"
ECOLOGITS = "ecologits-0.11.3"


def _estimate(ctx, version: str | None = None) -> EcoEstimate:  # noqa: ANN001
    estimate = estimate_request(
        ctx,
        active_params_b=Decimal("37"),
        total_params_b=Decimal("671"),
        params_accuracy="medium",
        provider="anthropic",
        region="eu-west",
        prompt_tokens=321,
        completion_tokens=123,
        latency_s=3.2,
        version=version,
    )
    assert estimate is not None
    return estimate


def _store(estimate: EcoEstimate) -> Generation:
    account, _ = User.objects.get_or_create(email="eco@example.com")
    return Generation.objects.create(
        account=account,
        requested_model="m",
        status=GenerationStatus.OK,
        energy_wh=estimate.energy_wh,
        carbon_g=estimate.carbon_g,
        carbon_per_1k_tokens_g=estimate.carbon_per_1k_tokens_g,
        eco_accuracy=estimate.accuracy,
        methodology_version=estimate.methodology_version,
        eco_inputs=estimate.inputs,
    )


def test_exactly_one_version_is_current_after_migrating(db: None) -> None:
    assert list(
        MethodologyVersion.objects.filter(is_current=True).values_list("version", flat=True)
    ) == [V04]
    assert MethodologyVersion.objects.filter(version=ECOLOGITS).exists()


def test_two_current_versions_are_rejected_by_the_database(db: None) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        MethodologyVersion.objects.filter(version=ECOLOGITS).update(is_current=True)


def test_make_current_swaps_the_current_version(db: None) -> None:
    MethodologyVersion.objects.get(version=ECOLOGITS).make_current()
    assert list(
        MethodologyVersion.objects.filter(is_current=True).values_list("version", flat=True)
    ) == [ECOLOGITS]


@pytest.mark.parametrize("version", [V04, ECOLOGITS])
def test_recompute_reproduces_after_a_json_round_trip(fresh_ctx, version: str) -> None:  # noqa: ANN001
    estimate = _estimate(fresh_ctx, version)
    again = recompute(json.loads(json.dumps(estimate.inputs)))
    assert again == estimate


@pytest.mark.parametrize("version", [V04, ECOLOGITS])
def test_recompute_command_accepts_a_stored_generation(db: None, version: str) -> None:
    generation = _store(_estimate(load_eco_context(), version))
    generation.refresh_from_db()
    call_command("eco_recompute", generation.pk)


def test_recompute_command_reports_a_mismatch(db: None, capsys: pytest.CaptureFixture) -> None:
    good = _store(_estimate(load_eco_context()))
    bad = _store(_estimate(load_eco_context()))
    Generation.objects.filter(pk=bad.pk).update(carbon_g=bad.carbon_g * 1.01)
    with pytest.raises(CommandError):
        call_command("eco_recompute", good.pk, bad.pk)
    err = capsys.readouterr().err
    assert bad.pk in err and good.pk not in err


def test_recompute_command_reports_tampered_coefficients(db: None) -> None:
    generation = _store(_estimate(load_eco_context()))
    inputs = dict(generation.eco_inputs, coefficients={"alpha": 1.0, "beta": 1.43e-3})
    Generation.objects.filter(pk=generation.pk).update(eco_inputs=inputs)
    with pytest.raises(CommandError):
        call_command("eco_recompute", generation.pk)


def test_recompute_command_accepts_an_omitted_estimate(db: None) -> None:
    account = User.objects.create(email="none@example.com")
    generation = Generation.objects.create(
        account=account, requested_model="m", status=GenerationStatus.OK
    )
    call_command("eco_recompute", generation.pk)


def test_changing_the_current_version_affects_only_later_estimates(db: None) -> None:
    before = _store(_estimate(load_eco_context()))
    stored_before = (before.energy_wh, before.carbon_g, before.methodology_version)

    MethodologyVersion.objects.get(version=ECOLOGITS).make_current()
    after = _store(_estimate(load_eco_context()))

    before.refresh_from_db()
    assert (before.energy_wh, before.carbon_g, before.methodology_version) == stored_before
    assert before.methodology_version == V04
    assert after.methodology_version == ECOLOGITS
    assert after.energy_wh < before.energy_wh
    # Both still reproduce from their own inputs and version.
    call_command("eco_recompute", before.pk, after.pk)


def test_operator_makes_a_version_current_in_the_admin(db: None, client) -> None:  # noqa: ANN001
    from eco.estimate import read_eco_context_version

    admin_user = make_operator()
    client.force_login(admin_user)
    before = read_eco_context_version()
    target = MethodologyVersion.objects.get(version=ECOLOGITS)
    response = client.post(
        "/admin/eco/methodologyversion/",
        {"action": "make_current", "_selected_action": [target.pk]},
    )
    assert response.status_code == 302
    assert MethodologyVersion.objects.get(is_current=True).version == ECOLOGITS
    assert read_eco_context_version() > before
