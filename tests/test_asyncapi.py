"""docs/contract/asyncapi.yaml is AsyncAPI 3.0.0 and says what edge.contract does."""

from __future__ import annotations

import copy
import inspect
import itertools
import json
import re
import typing
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator, FormatChecker

from edge.contract import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    ID_PATTERN,
    KINDS,
    SCHEMA_VERSION,
    TAG_VALUE_PATTERN,
    Batch,
    ContractError,
    FieldSpec,
    GatewayMeta,
    Reading,
    SensorKind,
    SensorMeta,
    decode,
    decode_meta,
    decode_strict,
    encode,
    encode_meta,
    topics,
)
from edge.contract.batch import MAX_READINGS_PER_BATCH, MAX_SEQ
from edge.contract.ids import RESERVED_ORGS
from edge.contract.kinds import STRING_PATTERN
from edge.contract.meta import (
    DRIVER_NAME_PATTERN,
    MAX_DEVICES_PER_SENSOR,
    MAX_SENSORS_PER_GATEWAY,
    META_VERSION,
)

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "contract" / "asyncapi.yaml"
JSON_TYPES = {"float": "number", "int": "integer", "bool": "boolean", "str": "string"}
# Functions of edge.contract.topics that build no channel's address.
NOT_CHANNEL_BUILDERS = {"gateway_topic", "parse", "shared"}

# jsonschema checks "date-time" only with an optional package; the contract wants an offset.
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")
FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _is_rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if RFC3339.fullmatch(value) is None:
        return False
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))  # rejects 2026-02-30
    return True


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded = yaml.safe_load(DOC_PATH.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def resolve(doc: dict[str, Any], ref: str) -> Any:
    """A local JSON pointer (RFC 6901), as AsyncAPI `$ref`s are."""
    assert ref.startswith("#/"), f"not a local reference: {ref}"
    node: Any = doc
    for escaped in ref[2:].split("/"):
        token = escaped.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), f"{ref}: {token!r} is not in an object"
        assert token in node, f"{ref}: no {token!r}"
        node = node[token]
    return node


def deref(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = resolve(doc, node["$ref"])
    return node


def refs(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every (where, $ref) in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield path, value
            else:
                yield from refs(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from refs(value, f"{path}/{i}")


def address_parameters(address: str) -> list[str]:
    return re.findall(r"\{([^}]+)\}", address)


def channel_parameters(doc: dict[str, Any], channel: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: deref(doc, p) for name, p in channel.get("parameters", {}).items()}


def validator(doc: dict[str, Any], schema: dict[str, Any]) -> Draft7Validator:
    # AsyncAPI schemas are a superset of JSON Schema draft 7; the `#/components/...` refs
    # resolve against a root that carries the document's components.
    root = {"allOf": [schema], "components": doc["components"]}
    return Draft7Validator(root, format_checker=FORMATS)


def batch_validator(doc: dict[str, Any]) -> Draft7Validator:
    return validator(doc, doc["components"]["messages"]["batch"]["payload"])


def kind_branches(doc: dict[str, Any]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """kind → (fields schema, tags schema), read from the Batch schema's if/then branches."""
    branches = {}
    for branch in doc["components"]["schemas"]["Batch"]["allOf"]:
        kind = branch["if"]["properties"]["kind"]["const"]
        assert branch["if"]["required"] == ["kind"]
        item = branch["then"]["properties"]["readings"]["items"]["properties"]
        assert kind not in branches, f"two branches for {kind}"
        branches[kind] = (deref(doc, item["fields"]), deref(doc, item["tags"]))
    return branches


# ---------------------------------------------------------------------------------------------
# Shape.


def test_the_document_is_asyncapi_3_shaped(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"]
    assert doc["info"]["version"]
    assert doc["channels"]
    assert doc["operations"]
    for name, channel in doc["channels"].items():
        assert re.fullmatch(r"[A-Za-z0-9_\-]+", name), name
        assert channel["address"], name
        assert channel["messages"], name
        assert not {"publish", "subscribe"} & channel.keys(), f"{name}: AsyncAPI 2 keys"
    for name, operation in doc["operations"].items():
        assert operation["action"] in {"send", "receive"}, name


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    found = list(refs(doc))
    assert found
    for where, ref in found:
        assert resolve(doc, ref) is not None, where


def test_every_operation_names_a_channel_and_that_channel_s_messages(doc: dict[str, Any]) -> None:
    for name, operation in doc["operations"].items():
        channel_ref = operation["channel"]["$ref"]
        assert channel_ref.startswith("#/channels/"), name
        channel = resolve(doc, channel_ref)
        assert "address" in channel, name
        assert operation["messages"], name
        for message in operation["messages"]:
            # AsyncAPI 3.0: an operation's messages MUST be those of its channel.
            assert message["$ref"].startswith(f"{channel_ref}/messages/"), name
            assert "payload" in deref(doc, message), name


def test_the_gateway_sends_data_status_health_meta_and_receives_config(doc: dict[str, Any]) -> None:
    def sides(actor: str) -> set[tuple[str, str]]:
        return {
            (op["action"], op["channel"]["$ref"].removeprefix("#/channels/"))
            for op in doc["operations"].values()
            if {"name": actor} in op.get("tags", [])
        }

    assert sides("gateway") == {
        ("send", "data"),
        ("send", "status"),
        ("send", "health"),
        ("send", "meta"),
        ("receive", "config"),
    }
    assert {("receive", "data"), ("receive", "meta"), ("send", "alert"), ("send", "deadletter")} <= sides(
        "cloud"
    )


def test_every_channel_declares_exactly_the_parameters_of_its_address(doc: dict[str, Any]) -> None:
    for name, channel in doc["channels"].items():
        assert sorted(address_parameters(channel["address"])) == sorted(channel.get("parameters", {})), name


# ---------------------------------------------------------------------------------------------
# Against edge.contract.topics.


def channel_builders() -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(topics, inspect.isfunction)
        if member.__module__ == topics.__name__ and not name.startswith("_")
    } - NOT_CHANNEL_BUILDERS


def test_every_topic_builder_has_a_channel_and_every_channel_a_builder(doc: dict[str, Any]) -> None:
    assert set(doc["channels"]) == channel_builders()


def test_every_channel_address_is_what_its_builder_builds(doc: dict[str, Any]) -> None:
    for name, channel in doc["channels"].items():
        builder: Callable[..., str] = getattr(topics, name)
        hints = typing.get_type_hints(builder)
        params = channel_parameters(doc, channel)
        assert list(inspect.signature(builder).parameters) == address_parameters(channel["address"]), name

        choices: dict[str, list[str]] = {}
        for param, spec in params.items():
            samples = spec.get("enum") or spec.get("examples") or [f"{param}-1"]
            for sample in samples:
                assert re.fullmatch(spec.get("x-pattern", ".*"), sample), (name, param, sample)
            choices[param] = samples
        for combination in itertools.product(*choices.values()):
            values = dict(zip(choices, combination, strict=True))
            arguments = {p: hints[p](v) if hints[p] is not str else v for p, v in values.items()}
            assert builder(**arguments) == channel["address"].format(**values), (name, values)


def test_the_kind_parameter_and_the_kind_field_list_every_sensor_kind(doc: dict[str, Any]) -> None:
    kinds = {kind.value for kind in SensorKind}
    assert set(doc["components"]["parameters"]["kind"]["enum"]) == kinds
    assert set(doc["components"]["schemas"]["Batch"]["properties"]["kind"]["enum"]) == kinds


def test_the_id_and_tag_value_patterns_are_the_code_s(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert schemas["Id"]["pattern"] == ID_PATTERN
    assert schemas["TagValue"]["pattern"] == TAG_VALUE_PATTERN
    patterned = [
        (name, param)
        for channel in doc["channels"].values()
        for name, param in channel_parameters(doc, channel).items()
        if "enum" not in param
    ]
    assert patterned
    for name, param in patterned:
        assert param["x-pattern"] == ID_PATTERN, name


def test_the_reserved_org_names_are_the_code_s(doc: dict[str, Any]) -> None:
    assert set(doc["components"]["parameters"]["org"]["x-reserved"]) == RESERVED_ORGS


# ---------------------------------------------------------------------------------------------
# The Batch schema against edge.contract.kinds and batch.


def test_the_batch_limits_are_the_code_s(doc: dict[str, Any]) -> None:
    message = doc["components"]["messages"]["batch"]
    batch = deref(doc, message["payload"])
    assert message["x-max-payload-bytes"] == DEFAULT_MAX_PAYLOAD_BYTES
    assert batch["properties"]["v"]["const"] == SCHEMA_VERSION
    assert batch["properties"]["seq"]["minimum"] == 0
    assert batch["properties"]["seq"]["maximum"] == MAX_SEQ
    readings = batch["properties"]["readings"]
    assert (readings["minItems"], readings["maxItems"]) == (1, MAX_READINGS_PER_BATCH)
    assert set(batch["required"]) == set(batch["properties"])
    assert batch["additionalProperties"] is False


def test_every_kind_has_its_fields_with_the_declared_types_ranges_and_units(doc: dict[str, Any]) -> None:
    branches = kind_branches(doc)
    assert set(branches) == {kind.value for kind in SensorKind}
    for kind, spec in KINDS.items():
        fields_schema, _ = branches[kind.value]
        assert fields_schema["additionalProperties"] is False, kind
        assert list(fields_schema["properties"]) == [f.name for f in spec.fields], kind
        assert set(fields_schema["required"]) == {f.name for f in spec.fields if f.required}, kind
        for f in spec.fields:
            documented = fields_schema["properties"][f.name]
            assert documented == expected_field_schema(f), f"{kind.value}.{f.name}"


def expected_field_schema(f: FieldSpec) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": JSON_TYPES[f.type], "x-unit": f.unit, "description": f.description}
    if f.type == "str" and f.choices:
        schema["enum"] = list(f.choices)
    elif f.type == "str":
        schema |= {"minLength": f.minimum, "maxLength": f.maximum, "pattern": STRING_PATTERN}
    elif f.type != "bool":
        schema |= {"minimum": f.minimum, "maximum": f.maximum}
    return schema


def test_every_kind_allows_exactly_its_declared_tags(doc: dict[str, Any]) -> None:
    branches = kind_branches(doc)
    for kind, spec in KINDS.items():
        _, tags_schema = branches[kind.value]
        assert tags_schema["additionalProperties"] is False, kind
        assert set(tags_schema["properties"]) == set(spec.tags), kind
        assert set(tags_schema.get("required", [])) == (set(spec.tags) if spec.fixed_tags else set()), kind
        for key, value in tags_schema["properties"].items():
            assert value == {"$ref": "#/components/schemas/TagValue"}, (kind, key)


def sample_batch(kind: SensorKind) -> Batch:
    """Readings at every field's minimum, midpoint and maximum, with every tag."""
    spec = KINDS[kind]

    def value(f: FieldSpec, at: float) -> float | int | bool | str:
        if f.type == "bool":
            return at >= 0.5
        if f.type == "str":
            return (
                f.choices[int(at * (len(f.choices) - 1))] if f.choices else ('x"\\é' * 64)[: int(f.maximum)]
            )
        raw = f.minimum + (f.maximum - f.minimum) * at
        return int(raw) if f.type == "int" else float(raw)

    readings = [
        Reading(
            kind=kind,
            org="comune-prato",
            gateway="gw-1",
            sensor=f"s-{i}",
            ts=datetime(2026, 11, 24, 8, i, tzinfo=UTC),
            fields={f.name: value(f, at) for f in spec.fields},
            tags=dict.fromkeys(spec.tags, f"v-{i}"),
        )
        for i, at in enumerate((0.0, 0.5, 1.0))
    ]
    return Batch.of(readings, seq=MAX_SEQ, sent_at=datetime(2026, 11, 24, 8, 5, tzinfo=UTC))


@pytest.mark.parametrize("kind", list(SensorKind))
def test_an_encoded_batch_of_every_kind_validates_against_the_batch_schema(
    doc: dict[str, Any], kind: SensorKind
) -> None:
    payload = json.loads(encode(sample_batch(kind)))

    batch_validator(doc).validate(payload)


def _parking_wire() -> dict[str, Any]:
    wire = json.loads(encode(sample_batch(SensorKind.PARKING)))
    assert isinstance(wire, dict)
    return wire


def _mutated(mutate: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    wire = copy.deepcopy(_parking_wire())
    mutate(wire)
    return wire


def _transit(tags: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    """A whole transit_delay payload with these changes to its second reading."""
    wire = json.loads(encode(sample_batch(SensorKind.TRANSIT_DELAY)))
    wire["readings"][1]["fields"].update(fields)
    if tags is not None:
        wire["readings"][1]["tags"] = tags
    assert isinstance(wire, dict)
    return wire


BROKEN: dict[str, Callable[[dict[str, Any]], None]] = {
    "version-2": lambda w: w.update(v=2),
    "unknown-kind": lambda w: w.update(kind="bus"),
    "negative-seq": lambda w: w.update(seq=-1),
    "uppercase-org": lambda w: w.update(org="Comune"),
    "naive-sent-at": lambda w: w.update(sent_at="2026-11-24T08:00:00"),
    "unknown-envelope-key": lambda w: w.update(extra=1),
    "no-readings": lambda w: w.update(readings=[]),
    "missing-sent-at": lambda w: w.pop("sent_at"),
    "field-out-of-range": lambda w: w["readings"][1]["fields"].update(occupancy_pct=100.5),
    "field-of-another-kind": lambda w: w["readings"][1]["fields"].update(lat=43.8),
    "field-missing": lambda w: w["readings"][1]["fields"].pop("capacity"),
    "field-wrong-type": lambda w: w["readings"][1]["fields"].update(occupied="3"),
    "field-fraction-in-int": lambda w: w["readings"][1]["fields"].update(occupied=3.5),
    "tag-of-another-kind": lambda w: w["readings"][1]["tags"].update(route="lam-blu"),
    "transit-trip-with-newline": lambda w: w.update(_transit(trip="LAM-BLU\n")),
    "transit-status-not-a-choice": lambda w: w.update(_transit(status="late")),
    "transit-trip-not-a-string": lambda w: w.update(_transit(trip=712)),
    "transit-route-tag-missing": lambda w: w.update(_transit(tags={})),
    "tag-with-space": lambda w: w["readings"][1]["tags"].update(zone="san paolo"),
    "reading-without-ts": lambda w: w["readings"][1].pop("ts"),
    "reading-repeats-kind": lambda w: w["readings"][1].update(kind="parking"),
    "sensor-not-an-id": lambda w: w["readings"][1].update(sensor="P_1"),
}


def test_the_unbroken_payload_passes_both_the_schema_and_the_decoder(doc: dict[str, Any]) -> None:
    wire = _parking_wire()

    batch_validator(doc).validate(wire)
    assert decode(json.dumps(wire).encode()).rejects == []


@pytest.mark.parametrize("mutate", list(BROKEN.values()), ids=list(BROKEN))
def test_a_broken_payload_is_refused_by_the_schema_and_by_the_decoder(
    doc: dict[str, Any], mutate: Callable[[dict[str, Any]], None]
) -> None:
    wire = _mutated(mutate)

    assert list(batch_validator(doc).iter_errors(wire)), "the schema accepts it"
    try:
        decoded = decode(json.dumps(wire).encode())
    except ContractError:
        return
    assert decoded.rejects, "the decoder accepts it"


# ---------------------------------------------------------------------------------------------
# The other messages.


def test_every_schema_is_a_valid_json_schema(doc: dict[str, Any]) -> None:
    for name, schema in doc["components"]["schemas"].items():
        Draft7Validator.check_schema(schema)
        assert isinstance(schema, dict), name


def test_every_message_example_validates_against_its_payload(doc: dict[str, Any]) -> None:
    examples = [
        (name, example["payload"])
        for name, message in doc["components"]["messages"].items()
        for example in message.get("examples", [])
    ]
    assert {name for name, _ in examples} >= {"batch", "status", "health", "alert", "deadletter"}
    for name, payload in examples:
        validator(doc, doc["components"]["messages"][name]["payload"]).validate(payload)
        if name == "batch":
            decode_strict(json.dumps(payload).encode())
        if name == "meta":
            decode_meta(json.dumps(payload).encode())


@pytest.mark.parametrize(
    ("message", "payload"),
    [
        ("status", {"state": "away", "ts": "2026-11-24T08:00:00.000Z", "version": "0.1.0"}),
        ("status", {"state": "online", "ts": "2026-11-24T08:00:00", "version": "0.1.0"}),
        ("health", {"ts": "2026-11-24T08:00:00.000Z", "uptime_s": 1}),
        ("alert", {"rule": "staleness", "severity": "urgent"}),
        ("deadletter", {"reason": "schema"}),
    ],
    ids=["status-unknown-state", "status-naive-ts", "health-missing-counters", "alert-bad", "deadletter-bad"],
)
def test_a_broken_message_is_refused_by_its_schema(doc: dict[str, Any], message: str, payload: Any) -> None:
    assert list(validator(doc, doc["components"]["messages"][message]["payload"]).iter_errors(payload))


def test_health_allows_extra_counters_and_status_and_alerts_do_not(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert schemas["Health"]["additionalProperties"] is True
    assert schemas["Status"]["additionalProperties"] is False
    assert schemas["Alert"]["additionalProperties"] is False


def test_an_alert_is_about_a_sensor_of_a_known_kind_or_a_gateway(doc: dict[str, Any]) -> None:
    kinds = doc["components"]["schemas"]["Alert"]["properties"]["kind"]["enum"]
    assert set(kinds) == {kind.value for kind in SensorKind} | {"gateway"}


# ---------------------------------------------------------------------------------------------
# The Meta schema against edge.contract.meta.


def test_the_meta_schema_has_the_code_s_fields_limits_and_patterns(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    meta, sensor = schemas["Meta"], schemas["SensorMeta"]
    for schema, model in ((meta, GatewayMeta), (sensor, SensorMeta)):
        assert set(schema["properties"]) == set(model.model_fields), model.__name__
        assert set(schema["required"]) == {n for n, f in model.model_fields.items() if f.is_required()}
        assert schema["additionalProperties"] is False
    assert meta["properties"]["v"]["const"] == META_VERSION
    assert meta["properties"]["sensors"]["maxItems"] == MAX_SENSORS_PER_GATEWAY
    assert sensor["properties"]["devices"]["maxItems"] == MAX_DEVICES_PER_SENSOR
    assert sensor["properties"]["driver"]["pattern"] == DRIVER_NAME_PATTERN
    assert set(sensor["properties"]["kind"]["enum"]) == {kind.value for kind in SensorKind}
    assert doc["components"]["messages"]["meta"]["x-max-payload-bytes"] == DEFAULT_MAX_PAYLOAD_BYTES


def sample_meta() -> GatewayMeta:
    return GatewayMeta(
        v=1,
        org="comune-prato",
        gateway="gw-lora",
        config_version="sha256:0123456789abcdef",
        sensors=(
            SensorMeta(id="p-1", kind=SensorKind.PARKING, driver="sim_parking"),
            SensorMeta(
                id="lora-centro",
                kind=SensorKind.PARKING_SPOT,
                driver="bosch_parking",
                devices=("s-1", "s-2"),
                unlisted_devices=True,
            ),
        ),
    )


def test_an_encoded_meta_validates_against_the_meta_schema(doc: dict[str, Any]) -> None:
    validator(doc, doc["components"]["messages"]["meta"]["payload"]).validate(
        json.loads(encode_meta(sample_meta()))
    )


BROKEN_META: dict[str, Callable[[dict[str, Any]], None]] = {
    "version-2": lambda w: w.update(v=2),
    "uppercase-gateway": lambda w: w.update(gateway="GW-1"),
    "unknown-key": lambda w: w.update(extra=1),
    "unknown-kind": lambda w: w["sensors"][0].update(kind="bus"),
    "driver-not-a-name": lambda w: w["sensors"][0].update(driver="Sim Parking"),
    "device-not-an-id": lambda w: w["sensors"][1]["devices"].append("S_3"),
    "no-sensors": lambda w: w.pop("sensors"),
}


@pytest.mark.parametrize("mutate", list(BROKEN_META.values()), ids=list(BROKEN_META))
def test_a_broken_meta_is_refused_by_the_schema_and_by_the_decoder(
    doc: dict[str, Any], mutate: Callable[[dict[str, Any]], None]
) -> None:
    wire = json.loads(encode_meta(sample_meta()))
    mutate(wire)

    schema = doc["components"]["schemas"]["Meta"]
    assert list(validator(doc, schema).iter_errors(wire)), "the schema accepts it"
    with pytest.raises(ContractError):
        decode_meta(json.dumps(wire).encode())
