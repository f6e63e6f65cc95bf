"""The rule registry: rule kinds registered by the name a rules file uses."""

from __future__ import annotations

from cloud.core.plugins import Registry, UnknownPluginError
from cloud.rules.base import Rule


class UnknownRuleError(UnknownPluginError):
    what = "rule"


_RULES: Registry[Rule] = Registry("rule", "kind", UnknownRuleError)
register = _RULES.register
get = _RULES.get
all_rules = _RULES.all
