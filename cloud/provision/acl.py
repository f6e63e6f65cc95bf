"""The Mosquitto ACL file, generated from the registry: each identity gets what it needs, no more.

Mosquitto denies whatever no line grants once an `acl_file` is set, and an identity absent from
the file (a revoked one) may do nothing. Patterns use MQTT wildcards (`+` one level, `#` the
rest) and are checked on publish, on subscribe and on delivery (mosquitto.conf(5), acl_file).
"""

from __future__ import annotations

from collections.abc import Iterable

from cloud.core.directory import FLEET_GATEWAY
from cloud.provision.registry import Identity, Role, ServiceRole
from edge.contract import topics

ROOT = topics.ROOT


def _publisher_rules(org: str, gateway: str) -> list[str]:
    base = f"{ROOT}/{org}/{gateway}"
    return [
        f"topic write {base}/data/+",
        f"topic write {base}/status",
        f"topic write {base}/health",
        f"topic write {base}/meta",
        # Its desired configuration, retained by the cloud: read, never written (cloud → gateway).
        f"topic read {base}/config",
    ]


_SERVICE_RULES: dict[ServiceRole, list[str]] = {
    ServiceRole.INGEST: [
        f"topic read {ROOT}/#",
        f"topic write {ROOT}/deadletter/#",
        f"topic write {ROOT}/services/#",
    ],
    ServiceRole.RULES: [
        f"topic read {ROOT}/#",
        f"topic write {ROOT}/alerts/#",
        f"topic write {ROOT}/services/#",
    ],
    ServiceRole.CONTROL: [
        f"topic read {ROOT}/#",
        f"topic write {ROOT}/+/+/config",
        f"topic write {ROOT}/services/#",
    ],
    ServiceRole.MONITOR: [
        f"topic read {ROOT}/#",
        "topic read $SYS/#",
    ],
    # The worksite API publishes its coordination findings as retained alerts, and reads nothing.
    ServiceRole.ALERTS: [
        f"topic write {ROOT}/alerts/#",
    ],
    # A health check proves the broker answers a subscription: one retained $SYS topic suffices.
    ServiceRole.PROBE: [
        "topic read $SYS/broker/uptime",
    ],
}


def rules_for(identity: Identity) -> list[str]:
    if identity.role is Role.GATEWAY:
        assert identity.org is not None
        return _publisher_rules(identity.org, identity.id)
    if identity.role is Role.UTILITY:
        return [
            *_publisher_rules(identity.id, FLEET_GATEWAY),
            # A utility sees the alerts raised about its own fleet, nobody else's.
            f"topic read {ROOT}/alerts/{identity.id}/#",
        ]
    assert identity.service_role is not None
    if identity.service_role is ServiceRole.FEED:
        assert identity.org is not None
        return _feed_rules(identity.org, identity.id)
    return list(_SERVICE_RULES[identity.service_role])


def _feed_rules(org: str, source: str) -> list[str]:
    """A feed reader publishes as its organisation's source `source` (data, status, health), the
    refusals of that source as dead letters (ingest's shape) and the alerts it raises about the
    feed (a stale feed); it reads nothing, not even a config (it has none on the broker)."""
    base = f"{ROOT}/{org}/{source}"
    return [
        f"topic write {base}/data/+",
        f"topic write {base}/status",
        f"topic write {base}/health",
        f"topic write {ROOT}/deadletter/{org}/{source}",
        f"topic write {ROOT}/alerts/{org}/#",
    ]


def acl_file(identities: Iterable[Identity]) -> str:
    """The ACL text for the active identities, sorted by username for stable diffs."""
    out = [
        "# Written by `sitroom provision` from registry.json: edit the registry, not this file.",
        "# No anonymous section: a client without a username may do nothing.",
        "",
    ]
    for identity in sorted(identities, key=lambda i: i.username):
        if identity.is_revoked:
            continue
        out.append(f"# {identity.role.value} {identity.id}" + (f" ({identity.org})" if identity.org else ""))
        out.append(f"user {identity.username}")
        out.extend(rules_for(identity))
        out.append("")
    return "\n".join(out)
