"""The MQTT topic scheme, version 1. Build topics here; never format them by hand elsewhere.

Per gateway, under ``sr/v1/{org}/{gateway}/``:

- ``data/{kind}``  batches of readings (QoS 1)
- ``status``       retained birth ("online") and last will ("offline")
- ``health``       the gateway's periodic counters
- ``config``       retained desired configuration, cloud → gateway
- ``meta``         retained declaration of the gateway's sensors (id, kind, driver), gateway → cloud

Cloud trees: ``sr/v1/alerts/{org}/{rule}/{entity}`` (retained alert state),
``sr/v1/deadletter/{org}/{gateway}`` (rejected input with reason),
``sr/v1/services/{service}/{instance}/health`` (cloud services' own counters) and
``sr/v1/services/ingest/{instance}/batches`` (the batch seqs an ingest worker wrote, for the
per-gateway accounting its shared-subscription group keeps together).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from edge.contract.errors import TopicError
from edge.contract.ids import RESERVED_ORGS, is_id
from edge.contract.kinds import SensorKind

ROOT = "sr/v1"
UNKNOWN = "unknown"  # placeholder id in dead-letter topics when the source cannot be told


class Channel(StrEnum):
    DATA = "data"
    STATUS = "status"
    HEALTH = "health"
    CONFIG = "config"
    META = "meta"


def _check_id(name: str, value: str) -> str:
    if not is_id(value):
        raise TopicError("must match [a-z0-9][a-z0-9-]{0,62}", field=name, value=value)
    return value


def _check_org(org: str) -> str:
    _check_id("org", org)
    if org in RESERVED_ORGS:
        raise TopicError(f"is reserved ({', '.join(sorted(RESERVED_ORGS))})", field="org", value=org)
    return org


def gateway_topic(org: str, gateway: str, channel: Channel) -> str:
    return f"{ROOT}/{_check_org(org)}/{_check_id('gateway', gateway)}/{channel.value}"


def data(org: str, gateway: str, kind: SensorKind) -> str:
    return f"{gateway_topic(org, gateway, Channel.DATA)}/{kind.value}"


def status(org: str, gateway: str) -> str:
    return gateway_topic(org, gateway, Channel.STATUS)


def health(org: str, gateway: str) -> str:
    return gateway_topic(org, gateway, Channel.HEALTH)


def config(org: str, gateway: str) -> str:
    return gateway_topic(org, gateway, Channel.CONFIG)


def meta(org: str, gateway: str) -> str:
    return gateway_topic(org, gateway, Channel.META)


def alert(org: str, rule: str, entity: str) -> str:
    return f"{ROOT}/alerts/{_check_org(org)}/{_check_id('rule', rule)}/{_check_id('entity', entity)}"


def deadletter(org: str = UNKNOWN, gateway: str = UNKNOWN) -> str:
    if not is_id(org) or org in RESERVED_ORGS:
        org = UNKNOWN
    if not is_id(gateway):
        gateway = UNKNOWN
    return f"{ROOT}/deadletter/{org}/{gateway}"


def service_health(service: str, instance: str) -> str:
    return f"{ROOT}/services/{_check_id('service', service)}/{_check_id('instance', instance)}/health"


def ingest_batches(instance: str) -> str:
    return f"{ROOT}/services/ingest/{_check_id('instance', instance)}/batches"


# Subscription filters.
ALL_DATA = f"{ROOT}/+/+/{Channel.DATA.value}/+"
ALL_STATUS = f"{ROOT}/+/+/{Channel.STATUS.value}"
ALL_HEALTH = f"{ROOT}/+/+/{Channel.HEALTH.value}"
ALL_META = f"{ROOT}/+/+/{Channel.META.value}"
ALL_ALERTS = f"{ROOT}/alerts/#"
ALL_DEADLETTERS = f"{ROOT}/deadletter/#"
ALL_SERVICE_HEALTH = f"{ROOT}/services/+/+/health"
ALL_INGEST_BATCHES = f"{ROOT}/services/ingest/+/batches"


def shared(group: str, topic_filter: str) -> str:
    """An MQTT 5 shared subscription ([MQTT-4.8.2]): the group's members split the messages."""
    return f"$share/{_check_id('group', group)}/{topic_filter}"


@dataclass(frozen=True, slots=True)
class GatewayTopic:
    org: str
    gateway: str
    channel: Channel
    kind: SensorKind | None = None


def parse(topic: str) -> GatewayTopic:
    """Parse a per-gateway topic; raises TopicError naming the bad level."""
    parts = topic.split("/")
    if len(parts) < 5 or "/".join(parts[:2]) != ROOT:
        raise TopicError(f"not a {ROOT}/{{org}}/{{gateway}}/... topic", field="topic", value=topic)
    org, gateway, channel_s = parts[2], parts[3], parts[4]
    _check_org(org)
    _check_id("gateway", gateway)
    try:
        channel = Channel(channel_s)
    except ValueError:
        raise TopicError("unknown channel", field="topic.channel", value=channel_s) from None
    if channel is Channel.DATA:
        if len(parts) != 6:
            raise TopicError("data topics end in /data/{kind}", field="topic", value=topic)
        try:
            kind = SensorKind(parts[5])
        except ValueError:
            known = ", ".join(k.value for k in SensorKind)
            raise TopicError(f"unknown kind; known: {known}", field="topic.kind", value=parts[5]) from None
        return GatewayTopic(org, gateway, channel, kind)
    if len(parts) != 5:
        raise TopicError(f"{channel.value} topics have five levels", field="topic", value=topic)
    return GatewayTopic(org, gateway, channel)
