"""The official Smart Data Models JSON Schemas, loaded from the shared standards folder.

They live beside the repository (`../shared/standards/smart-data-models/`, README there), never
copied into it. Each schema and the common schema are registered by their `$id` in a local
`referencing` registry, so validation fetches nothing. The schemas describe the keyValues form;
a normalized entity is checked by reading it as keyValues (`cloud.exchange.forms.key_values`).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from cloud.exchange.forms import key_values

from support import REPO


def _standards() -> Path:
    # `../shared/standards` of the repository; from a git worktree (/work/wt/<name>) the same
    # folder is one level further up.
    for parent in REPO.parents:
        candidate = parent / "shared" / "standards" / "smart-data-models"
        if candidate.is_dir():
            return candidate
    raise AssertionError(f"no shared/standards/smart-data-models above {REPO}: the official schemas")


SDM = _standards()
MODELS = {
    "OffStreetParking": "Parking/OffStreetParking",
    "ParkingSpot": "Parking/ParkingSpot",
    "TrafficFlowObserved": "Transportation/TrafficFlowObserved",
    "Vehicle": "Transportation/Vehicle",
    "FleetVehicleStatus": "Transportation/FleetVehicleStatus",
    "CityWork": "Transportation/CityWork",
    "EVChargingStation": "Transportation/EVChargingStation",
}


def _load(path: Path) -> dict[str, Any]:
    loaded = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@functools.cache
def registry() -> Registry:
    schemas = [_load(SDM / "common-schema.json")] + [_load(SDM / d / "schema.json") for d in MODELS.values()]
    return Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas)


@functools.cache
def validator(entity_type: str) -> Draft202012Validator:
    schema = _load(SDM / MODELS[entity_type] / "schema.json")
    formats = Draft202012Validator.FORMAT_CHECKER
    return Draft202012Validator(schema, registry=registry(), format_checker=formats)


def problems(entity: dict[str, Any]) -> list[str]:
    """Why `entity` (either form) does not validate against its type's official schema; [] if it does."""
    plain = key_values(entity)
    plain.pop("@context", None)
    errors = sorted(validator(plain["type"]).iter_errors(plain), key=lambda e: list(e.absolute_path))
    where = [".".join(map(str, e.absolute_path)) or "(entity)" for e in errors]
    return [f"{plain['id']}: {w}: {e.message}" for w, e in zip(where, errors, strict=True)]


def example(entity_type: str, name: str = "example.json") -> dict[str, Any]:
    """An official example (`example.json` keyValues, `example-normalized.jsonld`)."""
    return _load(SDM / MODELS[entity_type] / name)


__all__ = ["MODELS", "SDM", "example", "problems", "validator"]
