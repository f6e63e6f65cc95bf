"""The data policy file: every measurement shared or private, checked against what we write."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from cloud.ingest.consumer import Inbound, Prepared
from cloud.io.influx.policy import DataPolicy, DataPolicyError
from cloud.io.influx.schema import measurements
from edge.contract import KINDS

from support import REPO

POLICY = REPO / "deploy" / "data-policy.yaml"


def policy_file(tmp_path: Path, **changes: object) -> Path:
    raw = yaml.safe_load(POLICY.read_text())
    for name, value in changes.items():
        if value is None:
            del raw["measurements"][name]
        else:
            raw["measurements"][name] = value
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_deployment_policy_lists_every_kind_and_every_measurement_we_write() -> None:
    listed = yaml.safe_load(POLICY.read_text())["measurements"]
    assert set(listed) == set(measurements())
    assert {spec.kind.value for spec in KINDS.values()} <= set(listed)
    DataPolicy.load(POLICY, "sitroom")


def test_a_kind_missing_from_the_policy_is_refused_with_the_line_to_add(tmp_path: Path) -> None:
    with pytest.raises(DataPolicyError) as refused:
        DataPolicy.load(policy_file(tmp_path, fleet=None), "sitroom")

    assert refused.value.problems == [
        "measurements: fleet is missing: add `fleet: shared` or `fleet: private`"
    ]


def test_an_unknown_measurement_and_a_bad_visibility_are_refused_naming_them(tmp_path: Path) -> None:
    with pytest.raises(DataPolicyError, match=r"measurements\.buses: not a measurement we write"):
        DataPolicy.load(policy_file(tmp_path, buses="shared"), "sitroom")
    with pytest.raises(DataPolicyError, match=r"measurements.fleet: Input should be 'shared' or 'private'"):
        DataPolicy.load(policy_file(tmp_path, fleet="secret"), "sitroom")


def test_a_measurement_without_an_org_tag_cannot_be_private(tmp_path: Path) -> None:
    with pytest.raises(DataPolicyError) as refused:
        DataPolicy.load(policy_file(tmp_path, sitroom_ingest="private"), "sitroom")

    assert "sitroom_ingest: private, but its points carry no org tag" in str(refused.value)


def test_the_private_database_name_must_name_the_organisation(tmp_path: Path) -> None:
    raw = yaml.safe_load(POLICY.read_text()) | {"private_database": "{database}_private"}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw))

    with pytest.raises(DataPolicyError, match=re.escape("private_database: Value error, must contain {org}")):
        DataPolicy.load(path, "sitroom")


def test_lines_go_to_the_database_of_their_organisation_when_private() -> None:
    policy = DataPolicy.load(POLICY, "sitroom")

    assert policy.route("fleet,gateway=fleet,org=alia,sensor=v-1 lat=43.8 1") == "sitroom_alia"
    assert policy.route("parking,gateway=g,org=alia,sensor=p-1,zone=centro occupied=1i 1") == "sitroom"
    assert policy.route("alerts,entity=e,gateway=g,kind=parking,org=comune-prato,rule=r active=1i 1") == (
        "sitroom_comune-prato"
    )
    assert policy.route("sitroom_ingest,instance=main writes=1i 1") == "sitroom"
    # A dead letter whose topic named no organisation stays with the platform's operators.
    assert policy.route("sitroom_deadletter,gateway=unknown,org=unknown,reason=topic count=1i 1") == "sitroom"
    assert policy.split(["fleet,org=a,sensor=v lat=1 1", "parking,org=a,sensor=p occupied=1i 1"]) == {
        "sitroom_a": ["fleet,org=a,sensor=v lat=1 1"],
        "sitroom": ["parking,org=a,sensor=p occupied=1i 1"],
    }


def test_without_a_policy_file_everything_stays_in_one_database() -> None:
    policy = DataPolicy.load(None, "sitroom")

    assert not policy.is_separated
    assert policy.route("fleet,org=alia,sensor=v-1 lat=43.8 1") == "sitroom"
    assert policy.readable_by("alia", is_municipality=False, orgs=["alia", "at"]) == ["sitroom"]


def test_readers_read_the_shared_layers_and_their_own_and_the_municipality_everyones() -> None:
    policy = DataPolicy.load(POLICY, "sitroom")
    orgs = ["alia", "comune-prato", "publiacqua"]

    assert policy.readable_by("alia", is_municipality=False, orgs=orgs) == ["sitroom", "sitroom_alia"]
    assert policy.readable_by("comune-prato", is_municipality=True, orgs=orgs) == [
        "sitroom", "sitroom_alia", "sitroom_comune-prato", "sitroom_publiacqua",
    ]  # fmt: skip
    assert policy.sources("fleet", ["alia", "publiacqua"], "$rp") == (
        '"sitroom_alia"."$rp"."fleet", "sitroom_publiacqua"."$rp"."fleet"'
    )
    assert policy.sources("parking", ["alia"]) == '"sitroom".."parking"'


def test_a_round_of_messages_is_written_once_per_database_keeping_each_lines_origin() -> None:
    prepared = Prepared([], [], [], [], 0)
    one, two, three = (Inbound(f"t{i}", b"", i, 1) for i in range(3))
    prepared.add(one, ["a1", "a2"], ["s1", "s2"], "sitroom_a")
    prepared.add(two, ["p1"], ["s3"], "sitroom")
    prepared.add(three, ["a3"], ["s4"], "sitroom_a")

    groups = prepared.by_database()

    assert groups == [("sitroom_a", ["a1", "a2", "a3"], [0, 1, 3]), ("sitroom", ["p1"], [2])]
    assert prepared.owner(3) == (three, "s4")


def test_a_round_for_one_database_is_written_as_it_is() -> None:
    prepared = Prepared([], [], [], [], 0)
    prepared.add(Inbound("t", b"", 1, 1), ["l1", "l2"], ["s1", "s2"], "sitroom")

    [(database, lines, index)] = prepared.by_database()

    assert (database, index) == ("sitroom", None)
    assert lines is prepared.lines
