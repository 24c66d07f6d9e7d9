"""Ship the two methodology versions and the operator-set ``local`` region.

Values are written out here rather than imported, so this migration stays what it was even if
the code that computes with them moves on.
"""

import datetime

from django.db import migrations

V04_FORMULA = (
    "energy_wh = (alpha * P_active + beta) * total_tokens, with P_active the active parameters "
    "in billions and total_tokens = prompt_tokens + completion_tokens; "
    "carbon_g = energy_wh * grid_g_per_kwh / 1000; "
    "carbon_per_1k_tokens_g = carbon_g * 1000 / total_tokens. "
    "alpha = 8.91e-5 Wh per token per billion active parameters, beta = 1.43e-3 Wh per token "
    "(EcoLogits <= 0.8 GPU-energy fit, A100, no batching)."
)

ECOLOGITS_FORMULA = (
    "EcoLogits 0.11.3 LLM inference model, computed by the ecologits library: per output token "
    "GPU energy f_E = alpha * exp(beta * B) * P_active + gamma (Wh, B = batch size 64); GPU count "
    "from memory 1.2 * P_total * 16 / 8 GB on 80 GB GPUs rounded up to a power of two; generation "
    "time from the latency regression, capped at the measured latency; server energy "
    "(time / 3600) * 1.2 kW * GPUs / 8 / B; request energy = provider PUE * (server + GPUs * GPU "
    "energy). Usage carbon = energy * grid factor of the serving region; embodied carbon = time * "
    "(GPUs / 8 * 5700 + GPUs * 273 kgCO2e) / (3 years * B); water = IT energy * (WUE on-site + "
    "PUE * WUE off-site of the region). Input tokens are not counted. energy_wh and carbon_g are "
    "the midpoints of their ranges; carbon_g is the usage part only, as in the linear version."
)

ECOLOGITS_CONSTANTS = {
    "model_quantization_bits": 16,
    "gpu_energy_alpha": 1.1665273170451914e-06,
    "gpu_energy_beta": -0.011205921025579175,
    "gpu_energy_gamma": 4.052928146734005e-05,
    "latency_alpha": 0.0006785088094353663,
    "latency_beta": 0.0003119310311688259,
    "latency_gamma": 0.019473717579473387,
    "gpu_memory": 80,
    "gpu_embodied_gwp": 273,
    "server_gpu_count": 8,
    "server_power": 1.2,
    "server_embodied_gwp": 5700,
    "server_lifetime": 94608000,
    "batch_size": 64,
}

ECOLOGITS_DATACENTERS = {
    "openai": {"pue": 1.2, "wue": 0.569},
    "anthropic": {"pue": [1.09, 1.14], "wue": [0.13, 0.999]},
    "mistral": {"pue": 1.16, "wue": 0.09},
    "mistralai": {"pue": 1.16, "wue": 0.09},
    "google": {"pue": 1.09, "wue": 0.999},
    "google_genai": {"pue": 1.09, "wue": 0.999},
    "cohere": {"pue": 1.09, "wue": 0.999},
    "huggingface": {"pue": [1.09, 1.14], "wue": [0.13, 0.99]},
    "default": {"pue": [1.09, 1.14], "wue": [0.13, 0.99]},
}


def seed(apps, schema_editor):
    MethodologyVersion = apps.get_model("eco", "MethodologyVersion")
    GridRegion = apps.get_model("eco", "GridRegion")
    MethodologyVersion.objects.update_or_create(
        version="v0.4-2026-01",
        defaults={
            "kind": "linear-params",
            "formula": V04_FORMULA,
            "coefficients": {"alpha": 8.91e-5, "beta": 1.43e-3},
            "grid_dataset": "ember-owid-2023",
            "grid_source": "Ember via Our World in Data (CC BY 4.0), annual averages by country",
            "grid_year": 2023,
            "params_dataset_version": "lowrouter-catalog-2026-01",
            "effective_at": datetime.date(2026, 1, 1),
            "is_current": True,
        },
    )
    MethodologyVersion.objects.update_or_create(
        version="ecologits-0.11.3",
        defaults={
            "kind": "ecologits",
            "formula": ECOLOGITS_FORMULA,
            "coefficients": {
                "library": "ecologits==0.11.3",
                "constants": ECOLOGITS_CONSTANTS,
                "datacenters": ECOLOGITS_DATACENTERS,
            },
            "grid_dataset": "ecologits-0.11.3",
            "grid_source": "EcoLogits 0.11.3 electricity mixes (GWP from Ember via Our World in "
            "Data, CC BY 4.0; water from WRI)",
            "grid_year": 2024,
            "params_dataset_version": "lowrouter-catalog-2026-01",
            "effective_at": datetime.date(2026, 11, 25),
            "is_current": False,
        },
    )
    GridRegion.objects.get_or_create(
        code="local",
        defaults={
            "label": "Local server (operator-set)",
            "g_per_kwh": "56.0",
            "reference_country": "FR",
            "data_year": 2023,
            "accuracy": "gross",
            "note": "Operator-set default: the French grid average, Ember via OWID 2023. "
            "Change it to the grid your own server draws from.",
        },
    )


class Migration(migrations.Migration):
    dependencies = [("eco", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
