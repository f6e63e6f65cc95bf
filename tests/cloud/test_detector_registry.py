"""Every registered detector: a README naming it, a sample rule using it, cases that score as expected."""

from __future__ import annotations

import pytest
import yaml

from cloud.rules.detectors import UnknownDetectorError, all_detectors, folder, get
from cloud.rules.detectors.cases import cases_of, problems
from cloud.rules.engine import RulesFile
from cloud.rules.kinds import get as rule_kind

from support import case_params, undocumented

DETECTORS = sorted(all_detectors())
CASES = case_params(DETECTORS, lambda name: len(cases_of(name)))


def test_the_built_in_detectors_are_registered() -> None:
    assert set(DETECTORS) >= {"level", "robust-zscore", "seasonal", "flatline", "ensemble"}


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_folder_has_a_readme_that_names_it(name: str) -> None:
    readme = folder(get(name)) / "README.md"
    assert readme.is_file(), f"{name}: README.md missing in {readme.parent}"
    assert undocumented(readme, name, []) == []


@pytest.mark.parametrize("name", DETECTORS)
def test_sample_yaml_holds_a_valid_rule_that_uses_the_detector(name: str) -> None:
    raw = yaml.safe_load((folder(get(name)) / "sample.yaml").read_text(encoding="utf-8"))
    rules = RulesFile.model_validate(raw).rules
    configs = [rule_kind(str(entry["rule"])).Config.model_validate(entry) for entry in rules]
    assert any(getattr(c, "detector", None) == name for c in configs), f"no rule in sample.yaml uses {name}"


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_ships_cases_with_rows_that_must_and_must_not_score_high(name: str) -> None:
    cases = cases_of(name)
    assert len(cases) >= 3
    assert any(c.above for c in cases), "a case shows what the detector flags"
    assert all(c.above or c.below for c in cases)


@pytest.mark.parametrize(("name", "index"), CASES)
def test_case_rows_score_above_or_below_the_alert_threshold_as_expected(name: str, index: int) -> None:
    case = cases_of(name)[index]
    assert problems(name, case) == [], case.description


def test_an_unknown_detector_names_the_known_ones() -> None:
    with pytest.raises(UnknownDetectorError, match="known: ensemble, flatline, level"):
        get("prophet")
