"""The sensor directory of a provisioning registry: its active gateways' configs and its utilities.

The directory itself, and the check every reading passes, are the admission's
(`cloud.core.directory`); this builds it from what `sitroom provision` wrote.
"""

from __future__ import annotations

from cloud.core.directory import SensorDirectory
from cloud.provision.registry import IdentityRegistry, Role


def directory_from_registry(reg: IdentityRegistry) -> SensorDirectory:
    """The active gateways of a provisioning registry (their written configs) and utilities."""
    reg.load()
    paths = [reg.identity_dir(i.username) / "gateway.yaml" for i in reg.active() if i.role is Role.GATEWAY]
    utilities = [i.id for i in reg.active() if i.role is Role.UTILITY]
    return SensorDirectory.from_config_files(paths, utilities)
