"""Vehicle positions as GeoJSON through the push API, and `sitroom push` for a utility's technician."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from cloud.apps.cli.push import push_command
from cloud.ingest.positions import feature_path, to_batch
from edge.contract import SchemaError

from .ways import UTILITY, WaysInClient, batch, fix, now_ts, refused


def feature(vehicle: str, lon: Any = 11.1003, lat: Any = 43.8825, **props: Any) -> dict[str, Any]:
    properties = {"vehicle": vehicle, "ts": now_ts(30), "speed_kmh": 14.5, "heading_deg": 270.0} | props
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": properties,
    }


def collection(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def test_geojson_positions_are_stored_as_the_utility_s_fleet_readings_longitude_first(
    ways: WaysInClient,
) -> None:
    body = collection(feature("v-alia-01", route="raccolta-centro"), feature("v-alia-02", 11.09, 43.87))

    response = ways.push(body, path="/push/v1/positions")

    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 2
    series = ways.influx.series('SELECT "lat", "lon" FROM "fleet" GROUP BY "sensor", "gateway", "route"')
    where = {s["tags"]["sensor"]: (s["values"][0][1], s["values"][0][2], s["tags"]) for s in series}
    assert where["v-alia-02"][:2] == (43.87, 11.09)
    assert where["v-alia-01"][2] == {"sensor": "v-alia-01", "gateway": "fleet", "route": "raccolta-centro"}


def test_a_bad_feature_is_refused_with_its_path_in_the_geojson_beside_the_good_ones(
    ways: WaysInClient,
) -> None:
    line = {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[11, 43], [11.1, 43.1]]},
            "properties": {"vehicle": "v-3"}}  # fmt: skip
    body = collection(
        feature("v-alia-01"),
        feature("v-alia-02", lat=95.0),
        line,
        feature("v-alia-04", speed=12.0),
        feature("v-alia-05", heading_deg=400.0),
        feature("v-bus-101"),
    )

    answer = ways.push(body, path="/push/v1/positions").json()

    bad = refused(answer)
    assert {i: v["field"] for i, v in bad.items()} == {
        1: "features[1].geometry.coordinates[1]",
        2: "features[2].geometry.type",
        3: "features[3].properties.speed",
        4: "features[4].properties.heading_deg",
        5: "features[5].properties.vehicle",
    }
    assert bad[5]["reason"] == "forbidden"
    assert (answer["readings"], answer["accepted"]) == (6, 1)
    assert ways.stored() == 1
    assert ways.dead_letters() == 5


def test_a_nan_coordinate_is_refused_as_not_finite(ways: WaysInClient) -> None:
    body = json.dumps(collection(feature("v-alia-01"), feature("v-alia-02", lon=1.5))).replace("1.5", "NaN")

    answer = ways.push(body.encode(), path="/push/v1/positions").json()

    assert refused(answer)[1]["field"] == "features[1].geometry.coordinates[0]"
    assert refused(answer)[1]["message"] == "must be a finite number"


def test_a_body_that_is_not_a_feature_collection_is_refused_whole(ways: WaysInClient) -> None:
    response = ways.push({"type": "Feature"}, path="/push/v1/positions")

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "type"


@given(
    st.integers(0, 40),
    st.sampled_from([".fields.lat", ".fields.lon", ".sensor", ".ts", ".fields.speed_kmh", ""]),
)
def test_every_wire_path_names_the_geojson_member_it_came_from(k: int, rest: str) -> None:
    feature_of = [i * 2 + 1 for i in range(41)]

    path = feature_path(f"readings[{k}]{rest}", feature_of)

    assert path.startswith(f"features[{feature_of[k]}]")
    assert "readings" not in path
    assert ("coordinates" in path) == (rest in (".fields.lat", ".fields.lon"))


def test_a_collection_over_the_batch_limit_is_refused_before_any_reading() -> None:
    features = [feature("v-1")] * 10_001

    with pytest.raises(SchemaError, match="more than 10000 features"):
        to_batch(collection(*features), org="alia", gateway="fleet", seq=1, sent_at=datetime.now(UTC))


# -- sitroom push ---------------------------------------------------------------------------------


def _token(tmp_path: Path, ways: WaysInClient, org: str = UTILITY) -> Path:
    path = tmp_path / f"{org}.token"
    path.write_text(ways.tokens[org] + "\n")
    return path


def test_sitroom_push_sends_a_file_and_lists_what_was_refused(ways: WaysInClient, tmp_path: Path) -> None:
    data = tmp_path / "fixes.json"
    data.write_text(json.dumps(batch([fix("v-alia-01", 0), fix("v-alia-02", 1, lat=91.0)])))
    args = [str(data), "--org", UTILITY, "--token-file", str(_token(tmp_path, ways)), "--url", ways.url]

    first = CliRunner().invoke(push_command, args)
    again = CliRunner().invoke(push_command, args)

    assert first.exit_code == 2, first.output  # some readings refused
    assert "1 of 2 readings stored, 1 refused" in first.output
    assert "refused readings[1].fields.lat: out of range [-90, 90]" in first.output
    assert again.exit_code == 2
    assert ways.stored() == 1
    assert ways.dead_letters() == 1  # the same file again is the same batch id: stored once


def test_sitroom_push_splits_a_large_file_into_batches_of_10000(ways: WaysInClient, tmp_path: Path) -> None:
    data = tmp_path / "positions.geojson"
    data.write_text(
        json.dumps(collection(*[feature(f"v-alia-{i % 9}", ts=now_ts(60 - i / 1000)) for i in range(12_000)]))
    )
    args = [str(data), "--org", UTILITY, "--token-file", str(_token(tmp_path, ways)), "--url", ways.url]

    result = CliRunner().invoke(push_command, args)

    assert result.exit_code == 0, result.output
    assert "part 2/2" in result.output
    assert "12000 of 12000 readings stored" in result.output
    assert ways.stored() == 12_000


def test_sitroom_push_refuses_a_file_for_another_organisation_before_sending(
    ways: WaysInClient, tmp_path: Path
) -> None:
    data = tmp_path / "fixes.json"
    data.write_text(json.dumps(batch([fix("v-1")], org="firenze")))

    result = CliRunner().invoke(
        push_command,
        [str(data), "--org", UTILITY, "--token-file", str(_token(tmp_path, ways)), "--url", ways.url],
    )

    assert result.exit_code == 1
    assert "for organisation 'firenze', not 'alia'" in result.output
    assert ways.direct.stats.readings_received == 0
