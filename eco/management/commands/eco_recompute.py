"""Recompute stored generations' eco estimates from their inputs and methodology version.

This makes the reproducibility promise checkable: any difference beyond floating-point rounding
is reported and the command exits non-zero.
"""

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser

from eco.estimate import EcoEstimate, estimates_match, recompute
from eco.models import MethodologyVersion


class Command(BaseCommand):
    help = "Recompute generations' eco estimates from their stored inputs; non-zero on mismatch."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("generation_ids", nargs="+", metavar="GENERATION_ID")

    def handle(self, *args: Any, generation_ids: list[str], **options: Any) -> None:
        # Loaded lazily: eco sits below billing in the import graph.
        generation_model = apps.get_model("billing", "Generation")
        found = {g.pk: g for g in generation_model.objects.filter(pk__in=generation_ids)}
        failures = 0
        for generation_id in generation_ids:
            generation = found.get(generation_id)
            if generation is None:
                self.stderr.write(f"{generation_id}: no such generation")
                failures += 1
                continue
            problem = check_generation(generation)
            if problem:
                self.stderr.write(f"{generation_id}: {problem}")
                failures += 1
            else:
                self.stdout.write(f"{generation_id}: ok ({generation.methodology_version})")
        if failures:
            raise CommandError(f"{failures} of {len(generation_ids)} generation(s) did not match")


def check_generation(generation: Any) -> str:
    """'' when the stored estimate reproduces, else what differs."""
    inputs = generation.eco_inputs
    if generation.energy_wh is None:
        return "" if not inputs else "estimate omitted but inputs stored"
    if not inputs:
        return "estimate stored without its inputs"
    if inputs.get("methodology_version") != generation.methodology_version:
        return "inputs name a different methodology version than the generation"
    version = MethodologyVersion.objects.filter(version=generation.methodology_version).first()
    if version is None:
        return f"unknown methodology version {generation.methodology_version!r}"
    # The inputs carry a copy of the coefficients; it must be the version's, untampered.
    expected = {k: v for k, v in version.coefficients.items() if k != "datacenters"}
    if inputs.get("coefficients") != expected or inputs.get("kind") != version.kind:
        return "stored coefficients differ from the version's"
    again = recompute(inputs)
    stored = EcoEstimate(
        energy_wh=generation.energy_wh,
        carbon_g=generation.carbon_g,
        carbon_per_1k_tokens_g=generation.carbon_per_1k_tokens_g,
        accuracy=generation.eco_accuracy,
        methodology_version=generation.methodology_version,
    )
    if estimates_match(stored, again):
        return ""
    return (
        f"stored energy_wh={stored.energy_wh!r} carbon_g={stored.carbon_g!r} "
        f"per_1k={stored.carbon_per_1k_tokens_g!r} accuracy={stored.accuracy}; recomputed "
        f"energy_wh={again.energy_wh!r} carbon_g={again.carbon_g!r} "
        f"per_1k={again.carbon_per_1k_tokens_g!r} accuracy={again.accuracy}"
    )
