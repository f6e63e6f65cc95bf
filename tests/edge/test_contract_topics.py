"""Topics: every builder round-trips through parse, and bad levels are refused by name."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from edge.contract import ID_PATTERN, SensorKind, TopicError, is_id, topics
from edge.contract.ids import RESERVED_ORGS
from edge.contract.topics import Channel, GatewayTopic

ids = st.from_regex(ID_PATTERN, fullmatch=True)
orgs = ids.filter(lambda org: org not in RESERVED_ORGS)

# The builder of every per-gateway channel but data, which also takes a kind.
GATEWAY_BUILDERS: dict[Channel, Callable[[str, str], str]] = {
    Channel.STATUS: topics.status,
    Channel.HEALTH: topics.health,
    Channel.CONFIG: topics.config,
    Channel.META: topics.meta,
}

# Every builder that takes ids, with its parameter names, for the refusal tests.
BUILDERS: dict[str, tuple[Callable[..., str], tuple[str, ...]]] = {
    "data": (lambda org, gateway: topics.data(org, gateway, SensorKind.PARKING), ("org", "gateway")),
    "status": (topics.status, ("org", "gateway")),
    "health": (topics.health, ("org", "gateway")),
    "config": (topics.config, ("org", "gateway")),
    "meta": (topics.meta, ("org", "gateway")),
    "alert": (topics.alert, ("org", "rule", "entity")),
    "service_health": (topics.service_health, ("service", "instance")),
    "shared": (lambda group: topics.shared(group, topics.ALL_DATA), ("group",)),
}
BUILDER_PARAMS = [(name, param) for name, (_, params) in BUILDERS.items() for param in params]


def build(name: str, **override: str) -> str:
    builder, params = BUILDERS[name]
    values = {param: f"{param}-1" for param in params}
    values.update(override)
    return builder(*(values[param] for param in params))


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching ([MQTT-4.7.1]): `+` is one level, a final `#` any rest."""
    filter_levels, topic_levels = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(filter_levels):
        if level == "#":
            return True  # also matches the parent level itself [MQTT-4.7.1-2]
        if i >= len(topic_levels) or level not in ("+", topic_levels[i]):
            return False
    return len(filter_levels) == len(topic_levels)


# ---------------------------------------------------------------------------------------------
# Round trips.


def test_every_channel_has_a_builder() -> None:
    assert set(GATEWAY_BUILDERS) | {Channel.DATA} == set(Channel)


@pytest.mark.parametrize("kind", list(SensorKind))
@given(org=orgs, gateway=ids)
def test_a_data_topic_round_trips_through_parse_for_every_kind(
    org: str, gateway: str, kind: SensorKind
) -> None:
    topic = topics.data(org, gateway, kind)

    assert topic == f"sr/v1/{org}/{gateway}/data/{kind.value}"
    assert topics.parse(topic) == GatewayTopic(org, gateway, Channel.DATA, kind)


@pytest.mark.parametrize("channel", list(GATEWAY_BUILDERS))
@given(org=orgs, gateway=ids)
def test_a_gateway_topic_round_trips_through_parse_for_every_channel(
    org: str, gateway: str, channel: Channel
) -> None:
    topic = GATEWAY_BUILDERS[channel](org, gateway)

    assert topic == f"sr/v1/{org}/{gateway}/{channel.value}"
    assert topics.parse(topic) == GatewayTopic(org, gateway, channel)


TOPIC_PIECES = [
    "sr",
    "v1",
    "/",
    "data",
    "status",
    "config",
    "parking",
    "alerts",
    "a",
    "A",
    "-",
    "+",
    "#",
    " ",
]


@given(st.lists(st.sampled_from(TOPIC_PIECES), max_size=14).map("".join) | st.text())
@example("sr/v1/a/a/data/parking")
@example("sr/v1/a/a/status")
def test_any_text_given_to_parse_raises_only_topic_error(topic: str) -> None:
    refused: TopicError | None = None
    try:
        parsed = topics.parse(topic)
    except TopicError as exc:
        refused = exc
    if refused is not None:
        assert refused.field.startswith(("topic", "org", "gateway"))
    else:
        assert topics.parse(topic) == parsed
        rebuilt = (
            topics.data(parsed.org, parsed.gateway, parsed.kind)
            if parsed.kind is not None
            else GATEWAY_BUILDERS[parsed.channel](parsed.org, parsed.gateway)
        )
        assert rebuilt == topic


# ---------------------------------------------------------------------------------------------
# Refusals when building.


@pytest.mark.parametrize(("builder", "param"), BUILDER_PARAMS, ids=[f"{b}-{p}" for b, p in BUILDER_PARAMS])
@pytest.mark.parametrize(
    "bad",
    ["+", "#", "gw+", "gw#1", "gw/1", "Gw-1", "GW", "gw 1", "gw_1", "-gw", "", "x" * 64, "città"],
)
def test_building_refuses_wildcards_and_non_ids_naming_the_level(builder: str, param: str, bad: str) -> None:
    with pytest.raises(TopicError) as info:
        build(builder, **{param: bad})

    assert (info.value.field, info.value.value, info.value.reason) == (param, bad, "topic")


@pytest.mark.parametrize("builder", ["data", "status", "health", "config", "alert"])
@pytest.mark.parametrize("org", sorted(RESERVED_ORGS))
def test_reserved_org_names_are_refused_when_building(builder: str, org: str) -> None:
    with pytest.raises(TopicError, match="is reserved") as info:
        build(builder, org=org)

    assert (info.value.field, info.value.value) == ("org", org)


@pytest.mark.parametrize("org", sorted(RESERVED_ORGS))
def test_reserved_org_names_are_refused_when_parsing(org: str) -> None:
    with pytest.raises(TopicError, match="is reserved") as info:
        topics.parse(f"sr/v1/{org}/gw-1/status")

    assert info.value.field == "org"


def test_the_longest_id_is_accepted() -> None:
    assert topics.status("o" * 63, "g" * 63) == f"sr/v1/{'o' * 63}/{'g' * 63}/status"


# ---------------------------------------------------------------------------------------------
# Parse errors name the level.


@pytest.mark.parametrize(
    ("topic", "field"),
    [
        ("", "topic"),
        ("sr/v1/comune-prato/gw-1", "topic"),
        ("sr/v2/comune-prato/gw-1/status", "topic"),
        ("xx/v1/comune-prato/gw-1/status", "topic"),
        ("sr/v1/Comune/gw-1/status", "org"),
        ("sr/v1/+/gw-1/status", "org"),
        ("sr/v1//gw-1/status", "org"),
        ("sr/v1/comune-prato/GW-1/status", "gateway"),
        ("sr/v1/comune-prato/#/status", "gateway"),
        ("sr/v1/comune-prato/gw-1/about", "topic.channel"),
        ("sr/v1/comune-prato/gw-1/Status", "topic.channel"),
        ("sr/v1/comune-prato/gw-1/data", "topic"),
        ("sr/v1/comune-prato/gw-1/data/bus", "topic.kind"),
        ("sr/v1/comune-prato/gw-1/data/+", "topic.kind"),
        ("sr/v1/comune-prato/gw-1/data/parking/extra", "topic"),
        ("sr/v1/comune-prato/gw-1/status/", "topic"),
        ("sr/v1/comune-prato/gw-1/health/extra", "topic"),
    ],
)
def test_parse_errors_name_the_bad_level(topic: str, field: str) -> None:
    with pytest.raises(TopicError) as info:
        topics.parse(topic)

    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_an_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(TopicError, match="known: parking, parking_spot, traffic, fleet"):
        topics.parse("sr/v1/comune-prato/gw-1/data/bus")


# ---------------------------------------------------------------------------------------------
# The cloud trees and subscription filters.


def test_alert_and_service_health_topics_have_their_documented_shape() -> None:
    assert topics.alert("comune-prato", "staleness", "gw-1") == "sr/v1/alerts/comune-prato/staleness/gw-1"
    assert topics.service_health("ingest", "ingest-0") == "sr/v1/services/ingest/ingest-0/health"


@given(org=st.text(max_size=70), gateway=st.text(max_size=70))
def test_a_deadletter_topic_is_always_built_falling_back_to_unknown(org: str, gateway: str) -> None:
    topic = topics.deadletter(org, gateway)

    _, _, _, built_org, built_gateway = topic.split("/")
    assert topic.startswith("sr/v1/deadletter/")
    assert built_org == (org if is_id(org) and org not in RESERVED_ORGS else topics.UNKNOWN)
    assert built_gateway == (gateway if is_id(gateway) else topics.UNKNOWN)


def test_a_deadletter_for_an_unknown_source_goes_to_unknown() -> None:
    assert topics.deadletter() == "sr/v1/deadletter/unknown/unknown"
    assert topics.deadletter("alerts", "gw+1") == "sr/v1/deadletter/unknown/unknown"


@pytest.mark.parametrize(
    ("topic_filter", "topic"),
    [
        (topics.ALL_DATA, topics.data("comune-prato", "gw-1", SensorKind.FLEET)),
        (topics.ALL_STATUS, topics.status("comune-prato", "gw-1")),
        (topics.ALL_HEALTH, topics.health("comune-prato", "gw-1")),
        (topics.ALL_META, topics.meta("comune-prato", "gw-1")),
        (topics.ALL_ALERTS, topics.alert("comune-prato", "staleness", "gw-1")),
        (topics.ALL_DEADLETTERS, topics.deadletter("comune-prato", "gw-1")),
    ],
)
def test_each_subscription_filter_matches_the_topics_it_is_for(topic_filter: str, topic: str) -> None:
    assert matches(topic_filter, topic)


@pytest.mark.parametrize(
    ("topic_filter", "topic"),
    [
        (topics.ALL_DATA, topics.status("comune-prato", "gw-1")),
        (topics.ALL_STATUS, topics.health("comune-prato", "gw-1")),
        (topics.ALL_HEALTH, topics.config("comune-prato", "gw-1")),
        (topics.ALL_DATA, topics.config("comune-prato", "gw-1")),
        (topics.ALL_HEALTH, topics.service_health("ingest", "ingest-0")),
        (topics.ALL_META, topics.status("comune-prato", "gw-1")),
        (topics.ALL_STATUS, topics.meta("comune-prato", "gw-1")),
    ],
)
def test_a_subscription_filter_does_not_match_another_channel(topic_filter: str, topic: str) -> None:
    assert not matches(topic_filter, topic)


@pytest.mark.parametrize(
    ("topic_filter", "topic"),
    [
        # A rule named "data" puts an alert topic in the shape of a data topic, and a gateway
        # named "status" does the same to a dead-letter topic; the reserved org catches both.
        (topics.ALL_DATA, topics.alert("comune-prato", "data", "gw-1")),
        (topics.ALL_STATUS, topics.deadletter("comune-prato", "status")),
        (topics.ALL_HEALTH, topics.deadletter("comune-prato", "health")),
        (topics.ALL_META, topics.deadletter("comune-prato", "meta")),
    ],
)
def test_a_cloud_topic_caught_by_a_gateway_filter_is_refused_by_parse(topic_filter: str, topic: str) -> None:
    assert matches(topic_filter, topic)

    with pytest.raises(TopicError) as info:
        topics.parse(topic)

    assert info.value.field == "org"


def test_a_shared_subscription_prefixes_the_group() -> None:
    # [MQTT-4.8.2]: $share/{ShareName}/{filter}
    assert topics.shared("ingest", topics.ALL_DATA) == "$share/ingest/sr/v1/+/+/data/+"
