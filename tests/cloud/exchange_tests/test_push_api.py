"""The push API, end to end: a utility posts batches over HTTP into the real InfluxDB."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.dev.servers import Influxd
from cloud.ingest.push import PushOptions
from cloud.io.influx.client import InfluxClient
from cloud.worksites.store import WorksiteStore

from .conftest import MAX_BODY_BYTES, serve
from .ways import UTILITY, WaysInClient, batch, fix, refused

pytestmark = pytest.mark.timeout(180)


def test_a_request_without_a_token_is_refused_with_401(ways: WaysInClient) -> None:
    response = ways.client.post(
        "/push/v1/readings", content=json.dumps(batch([fix("v-alia-01")])), headers={"Idempotency-Key": "b-1"}
    )

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert ways.stored() == 0


def test_an_unknown_token_is_refused_with_401(ways: WaysInClient) -> None:
    response = ways.push(batch([fix("v-alia-01")]), headers={"Authorization": "Bearer srt_not-a-token"})

    assert response.status_code == 401
    assert response.json()["detail"] == "unknown API token"


def test_a_batch_without_a_batch_id_is_refused_naming_the_header(ways: WaysInClient) -> None:
    response = ways.client.post(
        "/push/v1/readings", content=json.dumps(batch([fix("v-1")])), headers=ways.auth()
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"].endswith("Idempotency-Key")


def test_a_valid_batch_is_stored_and_every_reading_accepted(ways: WaysInClient) -> None:
    response = ways.push(batch([fix("v-alia-01", 0), fix("v-alia-02", 1)]), batch_id="first")

    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["readings"], answer["accepted"], answer["refused"]) == (2, 2, 0)
    assert answer["verdicts"] == [{"index": 0, "status": "accepted"}, {"index": 1, "status": "accepted"}]
    assert answer["batch_id"] == "first"
    assert ways.stored() == 2


def test_a_batch_for_another_organisation_is_refused_with_403_and_dead_lettered(ways: WaysInClient) -> None:
    response = ways.push(batch([fix("v-at-1")], org="firenze"))

    assert response.status_code == 403
    assert response.json()["errors"][0]["field"] == "org"
    assert ways.stored(org="firenze") == 0
    assert ways.dead_letters(reason="forbidden") == 1


def test_another_organisations_sensor_is_refused_with_its_path_and_its_neighbours_stored(
    ways: WaysInClient,
) -> None:
    response = ways.push(batch([fix("v-alia-01", 0), fix("v-bus-101", 1), fix("v-alia-02", 2)]))

    answer = response.json()
    assert response.status_code == 200
    bad = refused(answer)
    assert list(bad) == [1]
    assert bad[1]["field"] == "readings[1].sensor"
    assert bad[1]["reason"] == "forbidden"
    assert "autolinee-toscane" in bad[1]["message"]
    assert ways.stored() == 2
    assert ways.dead_letters(reason="forbidden") == 1


def test_a_batch_sent_again_with_the_same_id_is_answered_again_and_stored_once(ways: WaysInClient) -> None:
    body = batch([fix("v-alia-01", 0), fix("v-alia-01", 1, lat=123.0)])

    first = ways.push(body, batch_id="redelivered")
    second = ways.push(body, batch_id="redelivered")

    assert first.status_code == second.status_code == 200
    assert second.json()["replayed"] is True
    assert {**first.json(), "replayed": True} == second.json()
    assert ways.stored() == 1
    assert ways.dead_letters() == 1  # the bad reading is dead-lettered once, not per delivery
    assert ways.direct.stats.readings_received == 2


def test_the_same_batch_id_with_another_body_is_refused(ways: WaysInClient) -> None:
    ways.push(batch([fix("v-alia-01", 0)]), batch_id="reused")

    response = ways.push(batch([fix("v-alia-02", 0)]), batch_id="reused")

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"
    assert ways.stored() == 1


def test_a_batch_of_10000_readings_is_stored_whole_with_10000_verdicts(ways: WaysInClient) -> None:
    readings = [fix(f"v-alia-{i % 50:02d}", i) for i in range(10_000)]

    response = ways.push(batch(readings))

    answer = response.json()
    assert response.status_code == 200, response.text[:500]
    assert (answer["accepted"], answer["refused"], len(answer["verdicts"])) == (10_000, 0, 10_000)
    assert ways.stored() == 10_000


def test_a_body_over_the_size_limit_is_refused_with_413_and_nothing_stored(ways: WaysInClient) -> None:
    body = json.dumps(batch([fix("v-alia-01", 0)])).encode() + b" " * MAX_BODY_BYTES

    response = ways.push(body)

    assert response.status_code == 413
    assert ways.stored() == 0


def test_malformed_json_is_refused_with_422_naming_the_payload_and_dead_lettered(ways: WaysInClient) -> None:
    response = ways.push(b'{"v": 1, "org": "alia", "readings": [')

    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["field"] == "payload"
    assert "not JSON" in error["message"]
    assert ways.dead_letters(reason="bad_json") == 1


def test_nan_and_out_of_range_values_are_refused_with_their_path_beside_the_valid_readings(
    ways: WaysInClient,
) -> None:
    readings = [fix("v-alia-01", 0), fix("v-alia-02", 1, lat=91.5), fix("v-alia-03", 2), fix("v-alia-04", 3)]
    body = json.dumps(batch(readings)).replace('"speed_kmh": 31.0', '"speed_kmh": NaN', 1)
    # The first reading is the one whose speed became NaN.

    response = ways.push(body.encode())

    answer = response.json()
    bad = refused(answer)
    assert response.status_code == 200
    assert sorted(bad) == [0, 1]
    assert (bad[0]["field"], bad[0]["message"]) == ("readings[0].fields.speed_kmh", "must be a finite number")
    assert (bad[1]["field"], bad[1]["message"]) == ("readings[1].fields.lat", "out of range [-90, 90]")
    assert bad[1]["value"] == "91.5"
    assert ways.stored() == 2
    assert ways.dead_letters(reason="schema") == 2


def test_a_reading_from_the_far_future_is_refused_by_ingest_s_time_policy(ways: WaysInClient) -> None:
    late = fix("v-alia-01", 0) | {"ts": "2099-01-01T00:00:00.000Z"}

    answer = ways.push(batch([late, fix("v-alia-02", 1)])).json()

    assert refused(answer)[0]["field"] == "readings[0].ts"
    assert refused(answer)[0]["reason"] == "policy"


def test_an_organisation_over_its_rate_gets_429_with_retry_after(
    store: WorksiteStore, influx_db: InfluxClient
) -> None:
    for ways in serve(
        store, influx_db, PushOptions(MAX_BODY_BYTES, rate_readings_per_s=1, burst_readings=10)
    ):
        first = ways.push(batch([fix("v-alia-01", i) for i in range(10)]))
        over = ways.push(batch([fix("v-alia-01", 100)]))
        other = ways.push(batch([fix("v-x-1", 0)], org="firenze"), org="firenze")

        assert first.status_code == 200
        assert over.status_code == 429
        assert int(over.headers["retry-after"]) >= 1
        assert other.status_code == 200  # the limit is per organisation
        assert ways.stored() == 10


def test_posted_equals_stored_plus_refused_end_to_end(ways: WaysInClient) -> None:
    posted = 0
    for n in range(5):
        readings = [fix(f"v-alia-{i % 7}", n * 1000 + i) for i in range(500)]
        readings[n]["fields"]["heading_deg"] = 361.0
        readings[n + 10]["sensor"] = "Not An Id"
        readings[n + 20] = fix("v-bus-101", n * 1000 + n + 20)
        posted += len(readings)
        assert ways.push(batch(readings, seq=n)).status_code == 200

    stored, refused_ = ways.stored(), ways.dead_letters()

    assert (stored, refused_) == (posted - 15, 15)
    assert stored + refused_ == posted
    snap = ways.direct.stats.snapshot()
    assert snap["readings_received"] == posted
    assert snap["readings_written"] + snap["readings_rejected"] == posted


@pytest.fixture
def own_influxd(tmp_path: Path) -> Iterator[Influxd]:
    server = Influxd(tmp_path / "influxd").start()
    yield server
    server.stop()


def test_influxdb_down_answers_503_storing_nothing_and_the_same_batch_later_is_stored_once(
    store: WorksiteStore, own_influxd: Influxd
) -> None:
    influx = InfluxClient(own_influxd.url, "push")
    influx.create_database()
    body = batch([fix("v-alia-01", 0), fix("v-alia-02", 1)])
    for ways in serve(store, influx, retry_for_s=0.5):
        own_influxd.stop()
        down = ways.push(body, batch_id="outage")
        own_influxd.start()
        again = ways.push(body, batch_id="outage")

        assert down.status_code == 503
        assert int(down.headers["retry-after"]) >= 1
        assert again.status_code == 200
        assert again.json()["replayed"] is False  # the failed attempt left nothing behind
        assert ways.stored() == 2
    influx.close()


def test_the_openapi_document_describes_both_push_endpoints(ways: WaysInClient) -> None:
    doc = ways.client.get("/openapi.json").json()

    readings = doc["paths"]["/push/v1/readings"]["post"]
    positions = doc["paths"]["/push/v1/positions"]["post"]
    assert "application/json" in readings["requestBody"]["content"]
    assert "application/geo+json" in positions["requestBody"]["content"]
    for op in (readings, positions):
        assert {"200", "401", "413", "422", "429", "503"} <= set(op["responses"])
        assert any(p["name"] == "Idempotency-Key" for p in op["parameters"])
    assert UTILITY  # the examples in docs/push-api.md use this organisation
