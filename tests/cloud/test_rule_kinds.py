"""Every registered rule kind: a README naming each option, a sample that validates, cases that pass."""

from __future__ import annotations

import re

import pytest
import yaml

from cloud.rules.cases import cases_of, compared, sample_configs
from cloud.rules.engine import RulesFile
from cloud.rules.kinds import UnknownRuleError, all_rules, folder, get

from support import case_params, undocumented

KINDS = sorted(all_rules())
CASES = case_params(KINDS, lambda name: len(cases_of(name)))


def test_the_built_in_rule_kinds_are_registered() -> None:
    assert set(KINDS) >= {
        "threshold",
        "rate_of_change",
        "flatline",
        "staleness",
        "seasonal",
        "worksite_impact",
        "geofence",
        "parking_saturation",
    }


@pytest.mark.parametrize("name", KINDS)
def test_rule_kind_folder_has_a_readme_naming_it_and_every_option(name: str) -> None:
    readme = folder(get(name)) / "README.md"
    assert readme.is_file(), f"{name}: README.md missing in {readme.parent}"
    assert undocumented(readme, name, list(get(name).Config.model_fields)) == []


@pytest.mark.parametrize("name", KINDS)
def test_sample_yaml_holds_valid_rules_of_the_kind_showing_every_option(name: str) -> None:
    configs = sample_configs(name)
    assert configs, f"{name}: no `rules:` entry with rule {name} in sample.yaml"
    raw = yaml.safe_load((folder(get(name)) / "sample.yaml").read_text(encoding="utf-8"))
    RulesFile.model_validate(raw)  # a rules file as a whole, not only its rules
    shown = set().union(*(e.keys() for e in raw["rules"] if e["rule"] == name))
    assert shown == set(get(name).Config.model_fields)


@pytest.mark.parametrize("name", KINDS)
def test_rule_kind_ships_cases_that_fire_and_resolve(name: str) -> None:
    cases = cases_of(name)
    assert len(cases) >= 3
    states = {a.state for c in cases for a in c.alerts}
    assert states == {"firing", "resolved"}, "the cases show an alert firing and one resolving"


@pytest.mark.parametrize(("name", "index"), CASES)
def test_case_readings_raise_exactly_the_expected_alerts(name: str, index: int) -> None:
    case = cases_of(name)[index]
    got, expected = compared(name, case)
    assert got == expected, case.description


def test_an_unknown_rule_kind_names_the_known_ones() -> None:
    with pytest.raises(UnknownRuleError, match=re.escape("known: flatline, geofence")):
        get("thresold")
