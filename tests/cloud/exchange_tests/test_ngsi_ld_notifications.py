"""NGSI-LD in: a partner's notifications become readings, through ingest's verdict, into InfluxDB."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

import orjson

from cloud.exchange.receiver import GATEWAY, NOTIFY_PATH
from cloud.io.influx.sites import InfluxSites

from .smart_data_models import example
from .ways import PARTNER, WaysInClient, now_ts


def car_park(local: str, *, total: int = 400, occupied: int = 120, **extra: Any) -> dict[str, Any]:
    """A partner's car park in the normalized form, as Orion-LD would notify it."""
    at = now_ts(30)
    return {
        "id": f"urn:ngsi-ld:OffStreetParking:firenze:{local}",
        "type": "OffStreetParking",
        "name": {"type": "Property", "value": f"Parcheggio {local}"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [11.2472, 43.7764]}},
        "totalSpotNumber": {"type": "Property", "value": total, "observedAt": at},
        "occupiedSpotNumber": {"type": "Property", "value": occupied, "observedAt": at},
        "availableSpotNumber": {"type": "Property", "value": total - occupied, "observedAt": at},
        **extra,
    }


def charger(local: str, *, available: Any = 1, status: str = "working") -> dict[str, Any]:
    """An e-mobility operator's station in the keyValues form."""
    return {
        "id": f"urn:ngsi-ld:EVChargingStation:{local}",
        "type": "EVChargingStation",
        "location": {"type": "Point", "coordinates": [11.1012, 43.8801]},
        "capacity": 4,
        "availableCapacity": available,
        "status": status,
        "socketType": ["Type2"],
        "allowedVehicleType": ["car"],
        "observationDateTime": now_ts(20),
    }


def notification(
    *entities: dict[str, Any], notification_id: str = "urn:ngsi-ld:Notification:1"
) -> dict[str, Any]:
    return {
        "id": notification_id,
        "type": "Notification",
        "subscriptionId": "urn:ngsi-ld:Subscription:sitroom:1",
        "notifiedAt": now_ts(),
        "data": list(entities),
    }


def notify(ways: WaysInClient, body: Any, org: str = PARTNER) -> Any:
    response = ways.client.post(NOTIFY_PATH, content=orjson.dumps(body), headers=ways.auth(org))
    assert response.status_code == 200, response.text
    return response.json()


def refused(answer: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {v["index"]: v for v in answer["verdicts"] if v["status"] == "refused"}


def test_a_notification_with_good_and_bad_entities_stores_the_good_and_refuses_each_bad_one_by_attribute(
    ways: WaysInClient,
) -> None:
    vehicle = {
        "id": "urn:ngsi-ld:Vehicle:firenze:bus-7",
        "type": "Vehicle",
        "location": {"type": "Point", "coordinates": [11.25, 95.0]},
        "speed": 20.0,
        "heading": 90.0,
        "observationDateTime": now_ts(10),
    }
    body = notification(
        car_park("fortezza"),
        car_park("stazione", total=100, occupied=150),
        charger("ev-1"),
        charger("ev-2", available="many"),
        vehicle,
    )

    answer = notify(ways, body)

    bad = refused(answer)
    assert (answer["entities"], answer["accepted"], answer["refused"]) == (5, 2, 3)
    # No `occupancy` given: the share is derived from the counts, and 150 % is out of range.
    assert (bad[1]["field"], bad[1]["value"]) == ("data[1].occupiedSpotNumber/totalSpotNumber", "150.0")
    assert bad[1]["message"] == "out of range [0, 100]"
    assert (bad[3]["field"], bad[3]["message"]) == ("data[3].availableCapacity", "expected a number, got str")
    assert bad[4]["field"] == "data[4].location.coordinates[1]"
    assert {v["reason"] for v in bad.values()} == {"schema"}
    assert ways.stored("parking", PARTNER) == 1
    assert ways.stored("ev_charging", PARTNER) == 1
    assert ways.dead_letters(PARTNER) == 3


def test_the_readings_are_the_partner_s_on_the_ngsi_ld_gateway_with_the_entity_s_own_time(
    ways: WaysInClient,
) -> None:
    park = car_park("fortezza", total=400, occupied=100)

    notify(ways, notification(park))

    series = ways.influx.series('SELECT * FROM "parking" GROUP BY *')
    assert len(series) == 1
    assert series[0]["tags"].items() >= {"org": PARTNER, "gateway": GATEWAY, "sensor": "fortezza"}.items()
    row = dict(zip(series[0]["columns"], series[0]["values"][0], strict=True))
    assert (row["occupied"], row["capacity"], row["occupancy_pct"]) == (100, 400, 25.0)
    observed = datetime.fromisoformat(park["availableSpotNumber"]["observedAt"].replace("Z", "+00:00"))
    assert row["time"] == observed.timestamp() * 1000


def test_a_notification_sent_again_is_answered_again_and_stored_once(ways: WaysInClient) -> None:
    body = notification(
        car_park("fortezza"), charger("ev-2", available="many"), notification_id="urn:x:again"
    )

    first = notify(ways, body)
    second = notify(ways, body)

    assert second["replayed"] is True
    assert {**first, "replayed": True} == second
    assert ways.stored("parking", PARTNER) == 1
    assert ways.dead_letters(PARTNER) == 1
    assert ways.direct.stats.readings_received == 2


def test_an_entity_of_an_unknown_type_is_refused_as_such_and_the_others_stored(ways: WaysInClient) -> None:
    weather = {"id": "urn:ngsi-ld:WeatherObserved:firenze:1", "type": "WeatherObserved", "temperature": 9.5}

    answer = notify(ways, notification(weather, car_park("fortezza")))

    bad = refused(answer)
    assert list(bad) == [0]
    assert (bad[0]["reason"], bad[0]["field"], bad[0]["value"]) == (
        "unknown_type",
        "data[0].type",
        "'WeatherObserved'",
    )
    assert "OffStreetParking" in bad[0]["message"]
    assert ways.stored("parking", PARTNER) == 1
    assert ways.dead_letters(PARTNER, reason="unknown_type") == 1


def test_a_partner_s_worksite_is_refused_as_not_a_reading(ways: WaysInClient) -> None:
    work = copy.deepcopy(example("CityWork"))

    answer = notify(ways, notification(work))

    assert refused(answer)[0]["reason"] == "not_a_reading"
    assert ways.dead_letters(PARTNER, reason="not_a_reading") == 1


def test_the_official_ev_charging_station_example_is_refused_only_for_what_it_lacks(
    ways: WaysInClient,
) -> None:
    station = copy.deepcopy(example("EVChargingStation", "example-normalized.jsonld"))
    station["observationDateTime"]["value"]["@value"] = now_ts(5)

    answer = notify(ways, notification(station))

    bad = refused(answer)[0]
    assert (bad["field"], bad["message"]) == ("data[0].availableCapacity", "required field missing")


def test_an_entity_without_any_time_takes_the_notification_s(ways: WaysInClient) -> None:
    station = charger("ev-1")
    del station["observationDateTime"]

    answer = notify(ways, notification(station))

    assert answer["accepted"] == 1
    assert ways.stored("ev_charging", PARTNER) == 1


def test_a_notification_without_a_token_is_refused_with_401(ways: WaysInClient) -> None:
    response = ways.client.post(NOTIFY_PATH, content=orjson.dumps(notification(car_park("x"))))

    assert response.status_code == 401
    assert ways.stored("parking", PARTNER) == 0


def test_a_body_that_is_not_a_notification_is_refused_with_422_and_dead_lettered(ways: WaysInClient) -> None:
    response = ways.client.post(
        NOTIFY_PATH, content=orjson.dumps({"type": "Entity", "data": []}), headers=ways.auth(PARTNER)
    )

    assert response.status_code == 422
    assert "type: expected type Notification" in response.json()["detail"]
    assert ways.dead_letters(PARTNER, reason="schema") == 1


def test_a_partner_s_car_park_is_recorded_where_it_stands_for_the_map(ways: WaysInClient) -> None:
    notify(ways, notification(car_park("fortezza"), charger("ev-1")))

    places = InfluxSites(ways.influx).sites()

    assert places["fortezza"].lon == 11.2472
    assert places["fortezza"].name == "Parcheggio fortezza"
    assert places["ev-1"].lat == 43.8801
    assert len(places) == 2


def test_a_refused_entity_leaves_no_place_on_the_map(ways: WaysInClient) -> None:
    notify(ways, notification(car_park("fortezza"), car_park("stazione", total=100, occupied=150)))

    assert set(InfluxSites(ways.influx).sites()) == {"fortezza"}


def test_a_partner_s_entity_named_like_a_sensor_the_records_give_to_another_organisation_is_refused(
    ways: WaysInClient,
) -> None:
    answer = notify(ways, notification(car_park("p-mercatale"), car_park("fortezza")))

    bad = refused(answer)
    assert list(bad) == [0]
    assert (bad[0]["reason"], bad[0]["field"]) == ("forbidden", "data[0].id")
    assert "comune-prato" in bad[0]["message"]
    assert ways.stored("parking", PARTNER) == 1
    assert ways.dead_letters(PARTNER, reason="forbidden") == 1
