"""The rules service sharded by organisation or area: each instance judges only its share."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.apps.rules import RulesSetupError, shard
from cloud.core.alerts import Alert
from cloud.core.orgs import Organisation, Role
from cloud.core.settings import CloudSettings
from cloud.dev.servers import Mosquitto
from cloud.io.orgstore import OrgStore
from cloud.rules.engine import Engine, load_rules
from cloud.rules.service import RulesService
from edge.contract import format_ts

from support import unique, wait_until

pytestmark = pytest.mark.e2e


class Recording(RulesService):
    """A rules service that keeps the topic of every message it judges."""

    def __init__(self, settings: CloudSettings) -> None:
        super().__init__(settings, Engine(load_rules()))
        self.seen: list[str] = []

    def handle(self, topic: str, payload: bytes) -> list[Alert]:
        self.seen.append(topic)
        return super().handle(topic, payload)


def parking(org: str) -> tuple[str, bytes]:
    ts = format_ts(datetime.now(UTC))
    fields = {"occupied": 1, "capacity": 10, "occupancy_pct": 10.0}
    body = {"v": 1, "org": org, "gateway": "gw-1", "kind": "parking", "seq": 0, "sent_at": ts,
            "readings": [{"sensor": "p-1", "ts": ts, "fields": fields}]}  # fmt: skip
    return f"sr/v1/{org}/gw-1/data/parking", orjson.dumps(body)


def test_two_instances_sharded_by_organisation_each_judge_only_their_own(
    settings: CloudSettings, mosquitto: Mosquitto
) -> None:
    a, b, c = unique("org-a-"), unique("org-b-"), unique("org-c-")
    first = Recording(settings.model_copy(update={"org_filter": f"{a},{b}", "instance": unique("r-")}))
    second = Recording(settings.model_copy(update={"org_filter": c, "instance": unique("r-")}))
    threads = [threading.Thread(target=s.run, daemon=True) for s in (first, second)]
    for t in threads:
        t.start()
    try:
        wait_until(
            lambda: first.conn.subscribed.is_set() and second.conn.subscribed.is_set(), 20, what="subscribed"
        )
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("pub-"))
        client.connect("127.0.0.1", mosquitto.port)
        client.loop_start()
        for org in (a, b, c):
            topic, payload = parking(org)
            client.publish(topic, payload, qos=1).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
        wait_until(lambda: len(first.seen) >= 2 and len(second.seen) >= 1, 20, what="each shard's messages")
    finally:
        for s in (first, second):
            s.stop()
        for t in threads:
            t.join(20)
    assert sorted(t.split("/")[2] for t in first.seen) == sorted([a, b])
    assert [t.split("/")[2] for t in second.seen] == [c]
    assert first.serves(a)
    assert not first.serves(c)


def test_a_shard_by_area_serves_the_organisations_whose_home_area_it_is(tmp_path: Path) -> None:
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    orgs = OrgStore.open(registry)
    orgs.add(
        Organisation(id="comune-prato", name="Comune di Prato", role=Role.MUNICIPALITY, areas=("prato",))
    )
    orgs.add(
        Organisation(
            id="publiacqua", name="Publiacqua", role=Role.UTILITY, areas=("prato", "piana-fiorentina")
        )
    )
    orgs.add(
        Organisation(
            id="comune-firenze", name="Comune di Firenze", role=Role.MUNICIPALITY, areas=("piana-fiorentina",)
        )
    )
    orgs.close()
    base = CloudSettings(worksites_db=registry)

    prato = shard(base.model_copy(update={"area_filter": "prato"}))
    plain = shard(base.model_copy(update={"area_filter": "piana-fiorentina"}))

    assert prato.org_filters == ["comune-prato", "publiacqua"]  # each organisation in one shard
    assert plain.org_filters == ["comune-firenze"]
    with pytest.raises(RulesSetupError, match="no organisation of the registry has its home area there"):
        shard(base.model_copy(update={"area_filter": "mugello"}))
    with pytest.raises(RulesSetupError, match="needs SITROOM_WORKSITES_DB"):
        shard(CloudSettings(area_filter="prato"))
