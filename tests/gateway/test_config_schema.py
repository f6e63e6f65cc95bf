"""`sitroom gateway schema`: the JSON Schema editors use agrees with the config loader."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml
from click.testing import CliRunner

from edge.drivers import all_drivers
from gateway.cli import group

from support import REPO


def schema() -> dict[str, object]:
    result = CliRunner().invoke(group, ["schema"])
    assert result.exit_code == 0, result.output
    loaded: dict[str, object] = json.loads(result.output)
    return loaded


def test_every_firmware_config_validates_against_the_exported_schema() -> None:
    validator = jsonschema.Draft202012Validator(schema())
    for path in sorted((REPO / "firmware_configs").glob("*.yaml")):
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
        assert not errors, f"{path.name}: {errors}"


def test_the_schema_refuses_an_unknown_driver_and_an_unknown_option(tmp_path: Path) -> None:
    validator = jsonschema.Draft202012Validator(schema())
    base = yaml.safe_load((REPO / "firmware_configs" / "gw-mercatale.yaml").read_text())
    unknown_driver = {**base, "sensors": [{"driver": "teleporter", "id": "x-1"}]}
    extra_option = {**base, "sensors": [{**base["sensors"][0], "baudrate": 9600}]}
    assert list(validator.iter_errors(unknown_driver))
    assert list(validator.iter_errors(extra_option))


def test_the_schema_names_every_registered_driver() -> None:
    text = json.dumps(schema())
    for name in all_drivers():
        assert f'"const": "{name}"' in text or f'"enum": ["{name}"]' in text, name
