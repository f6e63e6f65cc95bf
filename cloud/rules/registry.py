"""The rule registry: rule kinds registered by the name a rules file uses.

The built-in kinds are folders under `cloud/rules/kinds/`, registered by one import line each in
`cloud/rules/kinds/__init__.py`; `folder(cls)` is where a kind's README, sample and cases are.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from cloud.core.plugins import Registry, UnknownPluginError
from cloud.rules.base import Rule


class UnknownRuleError(UnknownPluginError):
    what = "rule"


_RULES: Registry[Rule[Any]] = Registry("rule", "kind", UnknownRuleError)
register = _RULES.register
get = _RULES.get
all_rules = _RULES.all


def folder(cls: type[Rule[Any]]) -> Path:
    """The rule kind's folder (README.md, sample.yaml, cases.yaml beside its code)."""
    return Path(inspect.getfile(cls)).parent
