"""Read and validate a catalogue file (YAML or JSON): providers, models and offerings.

Validation never writes: it turns the file into plain values or raises ``CatalogueError``
naming the entry and the field. ``catalog.catalogue_sync`` writes the result to the database.
The format is documented in docs/catalogue-format.md.
"""

import re
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db.models import TextChoices
from django.utils.dateparse import parse_date, parse_datetime

from catalog.models import (
    AccuracyBand,
    Currency,
    Lifecycle,
    OutputBoundField,
    Provider,
    ProviderStatus,
    WireFormat,
)

CAPABILITIES = ("tool_use", "vision", "structured_output", "streaming")
CAPABILITY_FIELDS = {
    "tool_use": "supports_tools",
    "vision": "supports_vision",
    "structured_output": "supports_structured_output",
    "streaming": "supports_streaming",
}
# Sane bounds for a price per 1M tokens in any billing currency: a typo (a price per token, an
# extra digit) lands outside them and is refused rather than billed.
MAX_PRICE_PER_1M = Decimal("1000")
MAX_PLATFORM_FEE_PER_1M = Decimal("100")
ENV_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]{0,99}$")
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
REGION_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")

PROVIDER_KEYS = {
    "id",
    "name",
    "wire_format",
    "output_bound_field",
    "base_url",
    "credential_env",
    "requires_credential",
    "billing_currency",
    "status",
    "data_handling",
    "is_demo",
    "price_list_url",
}
MODEL_KEYS = {
    "id",
    "display_name",
    "owner",
    "context_window",
    "max_output_tokens",
    "capabilities",
    "active_params_b",
    "params_source",
    "params_accuracy",
    "params_nominal",
    "platform_fee_per_1m",
    "lifecycle",
    "sunset_at",
    "replacement",
    "offerings",
}
OFFERING_KEYS = {
    "provider",
    "region",
    "upstream_model",
    "prompt_price",
    "completion_price",
    "cached_prompt_price",
    "enabled",
}
DATA_HANDLING_KEYS = {"retention", "training_use", "launch_status", "notes"}


class CatalogueError(ValueError):
    """A catalogue file that cannot be applied; the message names the entry and the field."""


# --- reading and validating -----------------------------------------------------------------


def read_catalogue(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(f"cannot read catalogue file {path}: {exc.strerror}") from exc
    try:
        # JSON is a subset of YAML 1.2 for everything a catalogue holds, so one parser reads both.
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{path} is not valid YAML/JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CatalogueError(
            f"{path}: the top level must be a mapping with 'providers' and 'models'"
        )
    unknown = set(data) - {"version", "providers", "models"}
    if unknown:
        raise CatalogueError(f"{path}: unknown top-level key(s): {', '.join(sorted(unknown))}")
    if data.get("version", 1) != 1:
        raise CatalogueError(f"{path}: unsupported catalogue version {data.get('version')!r}")
    return data


def _fail(where: str, field_name: str, message: str) -> CatalogueError:
    return CatalogueError(f"{where}: field '{field_name}': {message}")


def _check_keys(entry: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise CatalogueError(f"{where}: expected a mapping, got {type(entry).__name__}")
    if "credential" in entry or "api_key" in entry:
        name = "credential" if "credential" in entry else "api_key"
        raise _fail(
            where,
            name,
            "secrets never go in a catalogue file; put the key in an environment variable "
            "and name that variable in 'credential_env'",
        )
    unknown = set(entry) - allowed
    if unknown:
        raise _fail(
            where, sorted(unknown)[0], f"unknown field (allowed: {', '.join(sorted(allowed))})"
        )
    return entry


def _require(entry: dict[str, Any], key: str, where: str) -> Any:
    value = entry.get(key)
    if value is None or value == "":
        raise _fail(where, key, "is required")
    return value


def _str(
    entry: dict[str, Any], key: str, where: str, *, required: bool = False, max_len: int = 300
) -> str:
    value = _require(entry, key, where) if required else entry.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise _fail(where, key, f"must be a string, got {value!r}")
    if len(value) > max_len:
        raise _fail(where, key, f"is longer than {max_len} characters")
    return value


def _bool(entry: dict[str, Any], key: str, where: str, default: bool) -> bool:
    value = entry.get(key, default)
    if not isinstance(value, bool):
        raise _fail(where, key, f"must be true or false, got {value!r}")
    return value


def _choice(
    entry: dict[str, Any], key: str, where: str, choices: type[TextChoices], default: str | None
) -> str:
    value = entry.get(key, default)
    if value not in choices.values:
        raise _fail(where, key, f"must be one of {', '.join(choices.values)}, got {value!r}")
    return str(value)


def _positive_int(entry: dict[str, Any], key: str, where: str) -> int:
    value = _require(entry, key, where)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _fail(where, key, f"must be a positive integer, got {value!r}")
    return value


def parse_decimal(value: Any, where: str, key: str, *, maximum: Decimal) -> Decimal:
    """A non-negative amount; floats from YAML go through str() so 0.15 stays exactly 0.15."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise _fail(where, key, f"must be a number, got {value!r}")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise _fail(where, key, f"must be a number, got {value!r}") from exc
    if not amount.is_finite() or amount < 0:
        raise _fail(where, key, f"must be a finite number >= 0, got {value!r}")
    if amount > maximum:
        raise _fail(where, key, f"{amount} is above the sane bound of {maximum} per 1M tokens")
    if amount.as_tuple().exponent < -6:  # type: ignore[operator]
        raise _fail(where, key, f"{amount} has more than 6 decimal places")
    return amount


def _url(entry: dict[str, Any], key: str, where: str) -> str:
    value = _str(entry, key, where, required=True)
    try:
        URLValidator(schemes=["http", "https"])(value)
    except ValidationError as exc:
        raise _fail(where, key, f"{value!r} is not an http(s) URL") from exc
    return value.rstrip("/")


def validate_provider(entry: Any, index: int) -> dict[str, Any]:
    where = f"providers[{index}]"
    entry = _check_keys(entry, PROVIDER_KEYS, where)
    pid = _str(entry, "id", where, required=True)
    if not SLUG_RE.match(pid):
        raise _fail(where, "id", f"{pid!r} must be a lowercase slug (a-z, 0-9, -)")
    where = f"provider '{pid}'"
    credential_env = _str(entry, "credential_env", where, max_len=100)
    if credential_env and not ENV_NAME_RE.match(credential_env):
        raise _fail(
            where, "credential_env", f"{credential_env!r} is not an environment variable name"
        )
    requires_credential = _bool(entry, "requires_credential", where, True)
    if requires_credential and not credential_env:
        raise _fail(
            where,
            "credential_env",
            "is required unless 'requires_credential: false' (a local server with no key)",
        )
    data_handling = entry.get("data_handling") or {}
    if not isinstance(data_handling, dict):
        raise _fail(where, "data_handling", "must be a mapping")
    unknown = set(data_handling) - DATA_HANDLING_KEYS
    if unknown:
        raise _fail(where, f"data_handling.{sorted(unknown)[0]}", "unknown field")
    for key, value in data_handling.items():
        if not isinstance(value, str):
            raise _fail(where, f"data_handling.{key}", "must be a string")
    values = {
        "name": _str(entry, "name", where, required=True, max_len=120),
        "wire_format": _choice(entry, "wire_format", where, WireFormat, WireFormat.OPENAI),
        "output_bound_field": _choice(
            entry, "output_bound_field", where, OutputBoundField, OutputBoundField.MAX_TOKENS
        ),
        "base_url": _url(entry, "base_url", where),
        "credential_env": credential_env,
        "requires_credential": requires_credential,
        "billing_currency": _choice(entry, "billing_currency", where, Currency, None),
        "data_handling": data_handling,
        "is_demo": _bool(entry, "is_demo", where, False),
    }
    # The status is the operator's soft-disable switch: only a file that states it sets it, so a
    # re-sync never re-enables a provider an operator turned off.
    if "status" in entry:
        values["status"] = _choice(entry, "status", where, ProviderStatus, None)
    if entry.get("price_list_url"):
        values["price_list_url"] = _url(entry, "price_list_url", where)
    else:
        values["price_list_url"] = ""
    return {"id": pid, "values": values}


def validate_model(entry: Any, index: int, providers: dict[str, str]) -> dict[str, Any]:
    where = f"models[{index}]"
    entry = _check_keys(entry, MODEL_KEYS, where)
    mid = _str(entry, "id", where, required=True, max_len=200)
    if "/" not in mid or mid.startswith("/") or mid.endswith("/") or " " in mid:
        raise _fail(where, "id", f"{mid!r} must read '<provider-or-owner>/<model>'")
    where = f"model '{mid}'"
    capabilities = entry.get("capabilities", ["streaming"])
    if not isinstance(capabilities, list) or any(c not in CAPABILITIES for c in capabilities):
        raise _fail(where, "capabilities", f"must be a list drawn from {', '.join(CAPABILITIES)}")
    params = entry.get("active_params_b")
    active_params_b = None
    if params is not None:
        active_params_b = parse_decimal(params, where, "active_params_b", maximum=Decimal("10000"))
        if active_params_b == 0:
            raise _fail(where, "active_params_b", "must be above 0 (leave it out when unknown)")
    context_window = _positive_int(entry, "context_window", where)
    max_output = _positive_int(entry, "max_output_tokens", where)
    if max_output > context_window:
        raise _fail(where, "max_output_tokens", "cannot exceed context_window")
    lifecycle = _choice(entry, "lifecycle", where, Lifecycle, Lifecycle.ACTIVE)
    sunset_at = _datetime(entry.get("sunset_at"), where, "sunset_at")
    if lifecycle == Lifecycle.DEPRECATED and sunset_at is None:
        raise _fail(where, "sunset_at", "is required for a deprecated model")
    values = {
        "display_name": _str(entry, "display_name", where, required=True, max_len=200),
        "owner": _str(entry, "owner", where, required=True, max_len=100),
        "context_window": context_window,
        "max_output_tokens": max_output,
        "active_params_b": active_params_b,
        "params_source": _str(entry, "params_source", where),
        "params_accuracy": _choice(
            entry, "params_accuracy", where, AccuracyBand, AccuracyBand.GROSS
        ),
        "params_nominal": _bool(entry, "params_nominal", where, False),
        "lifecycle": lifecycle,
        "sunset_at": sunset_at,
        "replacement": _str(entry, "replacement", where, max_len=200),
    }
    for name, model_field in CAPABILITY_FIELDS.items():
        values[model_field] = name in capabilities
    fee = parse_decimal(
        entry.get("platform_fee_per_1m", 0),
        where,
        "platform_fee_per_1m",
        maximum=MAX_PLATFORM_FEE_PER_1M,
    )
    offerings_raw = entry.get("offerings") or []
    if not isinstance(offerings_raw, list):
        raise _fail(where, "offerings", "must be a list")
    offerings = []
    seen: set[tuple[str, str]] = set()
    for j, raw in enumerate(offerings_raw):
        offering = validate_offering(raw, f"{where} offerings[{j}]", providers)
        slot = (offering["provider"], offering["region"])
        if slot in seen:
            raise _fail(f"{where} offerings[{j}]", "region", f"duplicate slot {slot[0]}/{slot[1]}")
        seen.add(slot)
        offerings.append(offering)
    return {"id": mid, "values": values, "fee": fee, "offerings": offerings}


def _datetime(value: Any, where: str, key: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed: datetime | None = value
    elif isinstance(value, date):
        # YAML reads a bare 2027-03-01 as a date: take midnight UTC.
        parsed = datetime.combine(value, time.min, tzinfo=UTC)
    else:
        text = str(value)
        parsed = parse_datetime(text)
        day = parse_date(text) if parsed is None else None
        if day is not None:
            parsed = datetime.combine(day, time.min, tzinfo=UTC)
    if parsed is None:
        raise _fail(where, key, f"{value!r} is not an ISO 8601 date or time")
    if parsed.tzinfo is None:
        raise _fail(where, key, "must carry a time zone (use Z for UTC)")
    return parsed


def validate_offering(entry: Any, where: str, providers: dict[str, str]) -> dict[str, Any]:
    entry = _check_keys(entry, OFFERING_KEYS, where)
    provider = _str(entry, "provider", where, required=True, max_len=64)
    if provider not in providers:
        raise _fail(where, "provider", f"{provider!r} is not a provider of this file")
    region = _str(entry, "region", where, required=True, max_len=32)
    if not REGION_RE.match(region):
        raise _fail(where, "region", f"{region!r} must be a lowercase slug like eu-west")
    cached = entry.get("cached_prompt_price")
    return {
        "provider": provider,
        "region": region,
        "upstream_model": _str(entry, "upstream_model", where, required=True, max_len=200),
        "enabled": _bool(entry, "enabled", where, True),
        "prices": {
            "prompt_price": parse_decimal(
                _require(entry, "prompt_price", where),
                where,
                "prompt_price",
                maximum=MAX_PRICE_PER_1M,
            ),
            "completion_price": parse_decimal(
                _require(entry, "completion_price", where),
                where,
                "completion_price",
                maximum=MAX_PRICE_PER_1M,
            ),
            "cached_prompt_price": None
            if cached is None
            else parse_decimal(cached, where, "cached_prompt_price", maximum=MAX_PRICE_PER_1M),
        },
    }


def validate_catalogue(data: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    raw_providers = data.get("providers") or []
    raw_models = data.get("models") or []
    if not isinstance(raw_providers, list) or not isinstance(raw_models, list):
        raise CatalogueError("'providers' and 'models' must be lists")
    providers = [validate_provider(p, i) for i, p in enumerate(raw_providers)]
    ids = [p["id"] for p in providers]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise CatalogueError(f"provider '{sorted(duplicates)[0]}': field 'id': listed twice")
    # Offerings may also name providers that already exist in the database (a file that only
    # adds models to a provider defined elsewhere).
    known = {p["id"]: p["values"]["billing_currency"] for p in providers}
    for pid, currency in Provider.objects.values_list("id", "billing_currency"):
        known.setdefault(pid, currency)
    models = [validate_model(m, i, known) for i, m in enumerate(raw_models)]
    mids = [m["id"] for m in models]
    duplicates = {i for i in mids if mids.count(i) > 1}
    if duplicates:
        raise CatalogueError(f"model '{sorted(duplicates)[0]}': field 'id': listed twice")
    return providers, models
