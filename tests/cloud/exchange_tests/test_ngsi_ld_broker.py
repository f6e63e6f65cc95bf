"""The publisher and the subscription against a stand-in context broker that checks every request.

No context broker can run here (none is packaged for Debian or PyPI); `cloud.dev.context_broker`
implements the three endpoints we use and refuses what NGSI-LD would refuse.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from cloud.apps.cli.exchange import group
from cloud.dev.context_broker import StandInBroker, stand_in_broker
from cloud.exchange.broker import ContextBroker, RetryableBrokerError, UpsertResult
from cloud.exchange.entities import Place, Thing, entities_of
from cloud.exchange.forms import Entity
from cloud.exchange.publisher import Publisher
from cloud.exchange.receiver import NOTIFY_PATH
from edge.contract import Reading, SensorKind

from .smart_data_models import problems
from .ways import PARTNER, WaysInClient
from support import REPO, wait_until

AT = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


@pytest.fixture
def standin() -> Iterator[StandInBroker]:
    with stand_in_broker() as broker:
        yield broker
        assert broker.violations == []


def car_park(sensor: str, occupied: int, org: str = "comune-prato", minutes: int = 0) -> Thing:
    reading = Reading(
        kind=SensorKind.PARKING,
        org=org,
        gateway="gw-1",
        sensor=sensor,
        ts=AT + timedelta(minutes=minutes),
        fields={"occupied": occupied, "capacity": 500, "occupancy_pct": occupied / 5},
        tags={"zone": "centro"},
    )
    return Thing(org, "gw-1", sensor, SensorKind.PARKING, Place(43.8825, 11.1003, sensor), reading)


class Source:
    """What the publisher sees: the current state of a few car parks, changed by the test."""

    def __init__(self, n: int) -> None:
        self.things = {f"p-{i}": car_park(f"p-{i}", 100 + i) for i in range(n)}

    def set(self, sensor: str, occupied: int, minutes: int) -> None:
        self.things[sensor] = car_park(sensor, occupied, minutes=minutes)

    def __call__(self) -> list[Entity]:
        return [e for t in self.things.values() for e in entities_of(t)]


def test_the_publisher_upserts_every_entity_once_then_only_what_changed(standin: StandInBroker) -> None:
    source = Source(5)
    publisher = Publisher(ContextBroker(standin.url), source, batch_size=2)

    publisher.refresh()
    publisher.flush()
    first = len(standin.requests)
    source.set("p-3", 400, minutes=1)
    changed = publisher.refresh()
    publisher.flush()

    assert len(standin.entities) == 5
    assert first == 3  # 5 entities in batches of 2
    assert changed == 1
    assert len(standin.requests) == first + 1
    upserted = standin.entities["urn:ngsi-ld:OffStreetParking:comune-prato:p-3"]
    assert upserted["occupiedSpotNumber"]["value"] == 400
    assert all(problems(e) == [] for e in standin.entities.values())
    assert publisher.stats.upserted == 6


def test_a_broker_that_is_down_loses_nothing_and_gets_the_latest_state_when_back(
    standin: StandInBroker,
) -> None:
    source = Source(3)
    publisher = Publisher(ContextBroker(standin.url, timeout_s=2), source)
    standin.stop()

    publisher.refresh()
    with pytest.raises(RetryableBrokerError):
        publisher.flush()
    source.set("p-1", 250, minutes=1)
    source.set("p-1", 260, minutes=2)  # two changes while it is down: only the latest matters
    publisher.refresh()
    standin.start()
    publisher.flush()

    assert publisher.pending == {}
    assert len(standin.entities) == 3
    assert (
        standin.entities["urn:ngsi-ld:OffStreetParking:comune-prato:p-1"]["occupiedSpotNumber"]["value"]
        == 260
    )
    assert publisher.stats.failures == 1


def test_the_publisher_running_backs_off_while_the_broker_fails_and_catches_up(
    standin: StandInBroker,
) -> None:
    source = Source(4)
    publisher = Publisher(ContextBroker(standin.url), source, interval_s=0.05, max_backoff_s=0.4)
    standin.fail_next = 3
    stop = threading.Event()
    thread = threading.Thread(target=publisher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(standin.entities) == 4, 20, what="every entity at the broker")
        source.set("p-0", 7, minutes=3)
        wait_until(
            lambda: (
                standin.entities["urn:ngsi-ld:OffStreetParking:comune-prato:p-0"]["occupiedSpotNumber"][
                    "value"
                ]
                == 7
            ),
            20,
            what="the change at the broker",
        )
    finally:
        stop.set()
        thread.join(10)
    assert publisher.stats.failures == 3
    assert publisher.pending == {}


class RefusesOne(ContextBroker):
    """A broker answering 207 with one entity refused, as Orion-LD does for a bad attribute."""

    def upsert(self, entities: list[dict[str, object]]) -> UpsertResult:  # type: ignore[override]
        result = super().upsert(entities)
        bad = "urn:ngsi-ld:OffStreetParking:comune-prato:p-1"
        if bad in result.succeeded:
            result.succeeded.remove(bad)
            result.failed[bad] = "attribute not acceptable"
        return result


def test_an_entity_the_broker_refuses_is_counted_and_sent_again_only_once_changed(
    standin: StandInBroker,
) -> None:
    source = Source(3)
    publisher = Publisher(RefusesOne(standin.url), source)

    publisher.refresh()
    publisher.flush()
    unchanged = publisher.refresh()
    source.set("p-1", 321, minutes=4)
    changed = publisher.refresh()

    assert publisher.stats.refused == 1
    assert (unchanged, changed) == (0, 1)


def test_exchange_publish_once_sends_the_demo_s_entities_each_valid(
    standin: StandInBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    for name in ("SITROOM_INFLUX_URL", "SITROOM_WORKSITES_DB"):
        monkeypatch.delenv(name, raising=False)

    result = CliRunner().invoke(group, ["publish", "--broker", standin.url, "--once"])

    assert result.exit_code == 0, result.output
    assert len(standin.entities) >= 20
    assert {e["type"] for e in standin.entities.values()} >= {"OffStreetParking", "ParkingSpot", "CityWork"}
    assert [p for e in standin.entities.values() for p in problems(e)] == []


def test_subscribe_registers_our_subscription_exactly_and_a_second_time_updates_it(
    standin: StandInBroker, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("srt_partner-token\n")
    args = ["subscribe", "--broker", standin.url, "--notify-url", "https://sitroom.example.org" + NOTIFY_PATH]
    args += ["--token-file", str(token), "--type", "OffStreetParking", "--type", "EVChargingStation"]

    first = CliRunner().invoke(group, args)
    second = CliRunner().invoke(group, args)

    assert first.exit_code == second.exit_code == 0, first.output + second.output
    (sub,) = standin.subscriptions.values()
    assert sub["entities"] == [{"type": "EVChargingStation"}, {"type": "OffStreetParking"}]
    assert sub["notification"] == {
        "format": "normalized",
        "endpoint": {
            "uri": "https://sitroom.example.org/exchange/ngsi-ld/notify",
            "accept": "application/json",
            "receiverInfo": [{"key": "Authorization", "value": "Bearer srt_partner-token"}],
        },
    }
    methods = [(m, p.split("/")[-1]) for m, p, _, _ in standin.requests]
    assert methods[0] == ("POST", "subscriptions")
    assert methods[-1][0] == "PATCH"


def test_an_unknown_type_to_subscribe_to_is_refused_naming_the_known_ones(
    standin: StandInBroker, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("t")

    result = CliRunner().invoke(
        group,
        [
            "subscribe",
            "--broker",
            standin.url,
            "--notify-url",
            "http://x/n",
            "--token-file",
            str(token),
            "--type",
            "Bus",
        ],
    )

    assert result.exit_code == 2
    assert "OffStreetParking" in result.output
    assert standin.requests == []


def test_a_partner_s_broker_notifies_our_receiver_and_its_car_parks_are_stored(
    standin: StandInBroker, ways: WaysInClient, tmp_path: Path
) -> None:
    token = tmp_path / "partner.token"
    token.write_text(ways.tokens[PARTNER])
    subscribed = CliRunner().invoke(
        group,
        [
            "subscribe",
            "--broker",
            standin.url,
            "--notify-url",
            ways.url + NOTIFY_PATH,
            "--token-file",
            str(token),
        ],
    )
    assert subscribed.exit_code == 0, subscribed.output
    partner = ContextBroker(standin.url)
    parks = [car_park(f"pf-{i}", 50 + i, org=PARTNER) for i in range(3)]

    partner.upsert([e.normalized() for t in parks for e in entities_of(t)])

    wait_until(lambda: ways.stored("parking", PARTNER) == 3, 20, what="the partner's car parks stored")
    # The stand-in records the delivery once our answer reached it.
    assert wait_until(lambda: [d.status for d in standin.deliveries], 10, what="the delivery") == [200]
    partner.close()
