"""GTFS import: the Prato feed lands whole as a new version; a broken feed is refused with file,
line and column, and the previous version stays exactly as it was."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from jsonschema import Draft7Validator
from support_transit import OPERATOR, PRATO_AREA, edited, line_of, prato_feed_zip, replaced_line, text

from cloud.apps.api import create_app
from cloud.core.geo import ServiceAreas
from cloud.dev.apiserver import ThreadedApiServer
from cloud.transit import network, schema
from cloud.transit.store import TransitStore
from cloud.worksites.store import WorksiteStore
from edge.cli import root
from edge.contract.gtfs.ids import sensor_id
from edge.contract.gtfs.static import FeedError

from support import REPO


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TransitStore]:
    s = TransitStore.open(f"sqlite:///{tmp_path / 'transit.db'}")
    yield s
    s.close()


def imported(store: TransitStore, feed: bytes | None = None) -> TransitStore:
    store.import_feed(feed or prato_feed_zip(), operator=OPERATOR, area=PRATO_AREA)
    return store


def row_counts(store: TransitStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for name, table in schema.GTFS_TABLES.items()
        }


# ---------------------------------------------------------------------------------------------
# The Prato network.


def test_the_prato_network_imports_whole_as_version_one(store: TransitStore) -> None:
    result = store.import_feed(prato_feed_zip(), operator=OPERATOR, area=PRATO_AREA)

    assert (result.feed.operator, result.feed.version, result.feed.status) == (OPERATOR, 1, "current")
    assert result.feed.timezone == "Europe/Rome"
    assert result.feed.counts == {
        "agency": 1, "stops": 23, "routes": 4, "calendar": 3, "calendar_dates": 10, "shapes": 78,
        "trips": 833, "stop_times": 7679, "frequencies": 1,
    }  # fmt: skip
    assert row_counts(store) == {**result.feed.counts, "shapes": 7}  # one row per shape
    assert {r.route_id for r in network.routes(store)} == {"LAM-BLU", "LAM-ROSSA", "2", "CIRC"}


def test_times_past_midnight_are_kept_as_seconds_of_the_service_day(store: TransitStore) -> None:
    imported(store)

    night = network.trip_stops(store, OPERATOR, "LAM-BLU_FER_0_2410")

    assert (night[0].departure, night[-1].arrival) == ("24:10:00", "24:26:00")


def test_the_operator_defaults_to_the_agency_id(store: TransitStore) -> None:
    assert store.import_feed(prato_feed_zip(), area=PRATO_AREA).feed.operator == "at"


def test_a_new_version_replaces_the_old_one_and_its_rows(store: TransitStore) -> None:
    imported(store)
    more = edited("stops.txt", lambda ls: ls.append("PO-NUOVA,Fermata nuova,43.8800,11.1000,1"))

    result = store.import_feed(more, operator=OPERATOR, area=PRATO_AREA)

    assert (result.feed.version, result.replaced and result.replaced.version) == (2, 1)
    assert [(f.version, f.status) for f in store.feeds(OPERATOR)] == [(1, "replaced"), (2, "current")]
    assert len(network.stops(store, OPERATOR)) == 24
    assert row_counts(store)["stop_times"] == 7679  # the old version's rows are gone


def test_the_same_feed_again_changes_nothing(store: TransitStore) -> None:
    imported(store)

    again = store.import_feed(prato_feed_zip(), operator=OPERATOR, area=PRATO_AREA)

    assert again.is_unchanged
    assert [f.version for f in store.feeds()] == [1]


def test_two_operators_keep_their_own_current_feeds(store: TransitStore) -> None:
    imported(store)
    store.import_feed(prato_feed_zip(), operator="other-operator", area=PRATO_AREA)

    assert set(store.current_feeds()) == {OPERATOR, "other-operator"}
    assert len(network.routes(store, "other-operator")) == 4
    assert len(network.routes(store)) == 8


def test_a_utf8_byte_order_mark_is_allowed_as_the_reference_says(store: TransitStore) -> None:
    with_bom = prato_feed_zip({"stops.txt": b"\xef\xbb\xbf" + text("stops.txt").encode()})

    assert imported(store, with_bom).current_feed(OPERATOR).counts["stops"] == 23


def test_a_folder_of_txt_files_imports_like_its_zip(store: TransitStore) -> None:
    from edge.simulators.transit import PRATO_BUS_DIR  # noqa: PLC0415

    result = store.import_feed(PRATO_BUS_DIR, operator=OPERATOR, area=PRATO_AREA)

    assert result.feed.counts["stop_times"] == 7679


# ---------------------------------------------------------------------------------------------
# Broken feeds: each problem names file, line and column; the previous version stays.


def _stop_times_line(trip: str, seq: int) -> int:
    return line_of("stop_times.txt", f"{trip},{seq},")


def _without(name: str) -> bytes:
    return prato_feed_zip({name: None})


LATIN1 = "PO-STAZ-C,Stazione Centrale (città),43.8782,11.1074,1"
BROKEN: dict[str, tuple[Callable[[], bytes], str]] = {
    "missing-required-file": (lambda: _without("stops.txt"), "stops.txt: required file missing"),
    "no-calendar-at-all": (
        lambda: prato_feed_zip({"calendar.txt": None, "calendar_dates.txt": None}),
        "calendar.txt: required file missing (or calendar_dates.txt)",
    ),
    "missing-required-column": (
        lambda: edited("trips.txt", lambda ls: ls.__setitem__(0, ls[0].replace("service_id", "service"))),
        "trips.txt:1: required column service_id missing",
    ),
    "bad-time": (
        lambda: replaced_line(
            "stop_times.txt",
            "LAM-BLU_FER_0_0800,2,",
            "LAM-BLU_FER_0_0800,2,PO-VENETO,25:61:00,25:61:00,197.6",
        ),
        f"stop_times.txt:{_stop_times_line('LAM-BLU_FER_0_0800', 2)}: "
        "arrival_time '25:61:00' is not HH:MM:SS",
    ),
    "time-going-back": (
        lambda: replaced_line(
            "stop_times.txt",
            "LAM-BLU_FER_0_0800,3,",
            "LAM-BLU_FER_0_0800,3,PO-SMARCO,07:59:00,07:59:00,374.5",
        ),
        f"stop_times.txt:{_stop_times_line('LAM-BLU_FER_0_0800', 3)}: arrival_time 07:59:00 is before "
        "the previous stop's 08:01:00",
    ),
    "unknown-stop-in-stop-times": (
        lambda: replaced_line(
            "stop_times.txt",
            "LAM-BLU_FER_0_0800,2,",
            "LAM-BLU_FER_0_0800,2,PO-NOWHERE,08:01:00,08:01:00,197.6",
        ),
        f"stop_times.txt:{_stop_times_line('LAM-BLU_FER_0_0800', 2)}: "
        "stop_id 'PO-NOWHERE' is not in stops.txt",
    ),
    "unknown-route-of-a-trip": (
        lambda: edited("trips.txt", lambda ls: ls.__setitem__(1, ls[1].replace("LAM-BLU,", "LAM-VIOLA,", 1))),
        "trips.txt:2: route_id 'LAM-VIOLA' is not in routes.txt",
    ),
    "duplicate-stop-id": (
        lambda: edited("stops.txt", lambda ls: ls.append("PO-SMARCO,Piazza San Marco bis,43.8787,11.1028,1")),
        "stops.txt:25: stop_id 'PO-SMARCO' repeats line 4",
    ),
    "duplicate-stop-time": (
        lambda: edited("stop_times.txt", lambda ls: ls.append(ls[1])),
        "stop_times.txt:7681: trip_id/stop_sequence 'LAM-BLU_FER_0_0540, 1' repeats line 2",
    ),
    "swapped-coordinates": (
        lambda: replaced_line("stops.txt", "PO-PIAVE,", "PO-PIAVE,Viale Piave,11.1000,43.8778,1"),
        "stops.txt:5: coordinates 11.1, 43.8778 (lat, lon) are outside the area (10.98..11.22 E, "
        "43.78..43.98 N); swapped, they would be inside: are latitude and longitude exchanged?",
    ),
    "outside-the-area": (
        lambda: replaced_line("stops.txt", "PO-PIAVE,", "PO-PIAVE,Milano Centrale,45.4864,9.2043,1"),
        "stops.txt:5: coordinates 45.4864, 9.2043 (lat, lon) are outside the area (10.98..11.22 E, "
        "43.78..43.98 N)",
    ),
    "latin-1-encoding": (
        lambda: edited("stops.txt", lambda ls: ls.__setitem__(1, LATIN1), encoding="latin-1"),
        "stops.txt:2: byte 0xe0 at column 34 is not UTF-8 (GTFS files are UTF-8; was it saved as "
        "Latin-1 or Windows-1252?)",
    ),
    "utf-16": (
        lambda: prato_feed_zip({"routes.txt": text("routes.txt").encode("utf-16")}),
        "routes.txt:1: is UTF-16 (byte-order mark); GTFS files are UTF-8",
    ),
    "not-a-zip": (lambda: b"PK\x03\x04 this is not a zip", "the feed: is not a zip archive"),
    "a-trip-without-stop-times": (
        lambda: edited(
            "trips.txt", lambda ls: ls.append("LAM-BLU,FER,LAM-BLU_FANTASMA,Ospedale,0,SH-LAM-BLU-0")
        ),
        "trips.txt:835: trip_id 'LAM-BLU_FANTASMA' has fewer than two stop_times",
    ),
}


@pytest.mark.parametrize(("broken", "problem"), BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_feed_is_refused_naming_file_line_and_column_and_the_old_version_stays(
    store: TransitStore, broken: Callable[[], bytes], problem: str
) -> None:
    imported(store)
    before = (store.current_feed(OPERATOR), row_counts(store))

    with pytest.raises(FeedError) as info:
        store.import_feed(broken(), operator=OPERATOR, area=PRATO_AREA)

    assert problem in [str(p) for p in info.value.problems] or str(info.value).startswith(problem), str(
        info.value
    )
    assert (store.current_feed(OPERATOR), row_counts(store)) == before
    assert [f.version for f in store.feeds(OPERATOR)] == [1]


def test_a_broken_first_feed_leaves_no_version_at_all(store: TransitStore) -> None:
    with pytest.raises(FeedError):
        store.import_feed(_without("trips.txt"), operator=OPERATOR, area=PRATO_AREA)

    assert store.feeds() == []
    assert set(row_counts(store).values()) == {0}


def test_many_problems_are_reported_together_up_to_a_limit(store: TransitStore) -> None:
    def break_all_times(ls: list[str]) -> None:
        for i in range(1, len(ls)):
            ls[i] = ls[i].replace(":00,", ":61,")

    with pytest.raises(FeedError) as info:
        store.import_feed(edited("stop_times.txt", break_all_times), operator=OPERATOR, area=PRATO_AREA)

    assert len(info.value.problems) == 50
    assert info.value.truncated
    assert all("is not HH:MM:SS" in str(p) for p in info.value.problems)


def test_the_import_command_prints_each_problem_and_fails(tmp_path: Path) -> None:
    feed = tmp_path / "broken.zip"
    feed.write_bytes(BROKEN["bad-time"][0]())
    db = f"sqlite:///{tmp_path / 'cli.db'}"

    result = CliRunner().invoke(root, ["transit", "import", str(feed), "--operator", OPERATOR, "--db", db])

    assert result.exit_code == 1
    assert BROKEN["bad-time"][1] in result.output
    assert "the current version (if any) is unchanged" in result.output


def test_the_import_command_reports_the_new_version_and_the_listings_show_it(tmp_path: Path) -> None:
    feed = tmp_path / "prato.zip"
    feed.write_bytes(prato_feed_zip())
    db = ["--db", f"sqlite:///{tmp_path / 'cli.db'}"]
    area = ["--area", "10.98,43.78,11.22,43.98"]
    runner = CliRunner()

    first = runner.invoke(root, ["transit", "import", str(feed), "--operator", OPERATOR, *area, *db])
    routes = runner.invoke(root, ["transit", "routes", *db])
    stops = runner.invoke(root, ["transit", "stops", "--route", "CIRC", *db])
    show = runner.invoke(root, ["transit", "show", "LAM-BLU", *db])

    assert first.exit_code == 0, first.output
    assert f"{OPERATOR}: version 1 in" in first.output
    assert "7,679 stop_times" in first.output
    assert "LAM-BLU" in routes.output
    assert "LAM Rossa" in routes.output
    assert len(stops.output.splitlines()) == 8
    assert "Ospedale Santo Stefano" in show.output


# ---------------------------------------------------------------------------------------------
# GeoJSON feeds for map layers, on the API.


def _standards() -> Path:
    """`../shared/standards` of the checkout (the main tree or a worktree below it)."""
    for parent in REPO.parents:
        if (parent / "shared" / "standards").is_dir():
            return parent / "shared" / "standards"
    raise AssertionError("no shared/standards next to the repository: the official schemas are missing")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[httpx.Client]:
    """The API on its own database, where the Prato feed was imported."""
    worksites = WorksiteStore.open(f"sqlite:///{tmp_path / 'api.db'}", areas=ServiceAreas.load())
    imported(TransitStore.open(f"sqlite:///{tmp_path / 'api.db'}"))
    with ThreadedApiServer(create_app(worksites)) as server, httpx.Client(base_url=server.url) as client:
        yield client
    worksites.close()


def test_stops_and_routes_are_valid_geojson_on_the_api(api: httpx.Client) -> None:
    schema_ = json.loads((_standards() / "geojson" / "FeatureCollection.json").read_text(encoding="utf-8"))
    validator = Draft7Validator(schema_)

    stops = api.get("/feeds/transit/stops.geojson")
    routes = api.get("/feeds/transit/routes.geojson")

    assert stops.status_code == routes.status_code == 200
    validator.validate(stops.json())
    validator.validate(routes.json())
    smarco = next(f for f in stops.json()["features"] if f["properties"]["stop_id"] == "PO-SMARCO")
    # The feature id is the stop's contract id, the `sensor` of its transit_delay points.
    assert smarco["id"] == sensor_id("PO-SMARCO")
    assert smarco["geometry"]["coordinates"] == [11.1028, 43.8787]  # [lon, lat]
    assert smarco["properties"]["routes"] == ["2", "CIRC", "LAM-BLU", "LAM-ROSSA"]
    blu = next(f for f in routes.json()["features"] if f["properties"]["route_id"] == "LAM-BLU")
    assert blu["geometry"]["type"] == "MultiLineString"
    assert len(blu["geometry"]["coordinates"]) == 2  # one shape per direction
    assert blu["properties"]["color"] == "#0055A4"


def test_a_feed_unchanged_since_the_client_s_copy_is_not_sent_again(api: httpx.Client) -> None:
    first = api.get("/feeds/transit/routes.geojson")

    again = api.get("/feeds/transit/routes.geojson", headers={"If-None-Match": first.headers["etag"]})

    assert again.status_code == 304


def test_an_unknown_operator_is_a_404_naming_the_known_ones(api: httpx.Client) -> None:
    response = api.get("/feeds/transit/stops.geojson", params={"operator": "nope"})

    assert response.status_code == 404
    assert OPERATOR in response.json()["detail"]


def test_the_feeds_are_empty_collections_before_any_import(tmp_path: Path) -> None:
    worksites = WorksiteStore.open(f"sqlite:///{tmp_path / 'empty.db'}", areas=ServiceAreas.load())
    with ThreadedApiServer(create_app(worksites)) as server:
        empty = httpx.get(f"{server.url}/feeds/transit/stops.geojson").json()
    worksites.close()

    assert empty == {"type": "FeatureCollection", "features": []}


def test_the_sample_network_readme_says_the_data_is_the_project_s_own() -> None:
    readme = (REPO / "edge" / "simulators" / "prato_bus" / "README.md").read_text(encoding="utf-8")

    assert "our own data" in readme.lower()
    assert "nothing here was copied" in readme.lower()
