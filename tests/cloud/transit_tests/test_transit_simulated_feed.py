"""The reader on the simulator's feed for a simulated hour: what one side writes the other reads."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import orjson
import pytest
from support_transit import OPERATOR

from cloud.transit.realtime.config import ReaderConfig
from cloud.transit.realtime.reader import TransitReader
from cloud.transit.store import TransitStore
from edge.contract.gtfs.ids import sensor_id
from edge.simulators.clock import ManualClock
from edge.simulators.gtfs_rt import FeedGenerator, GtfsRtServer, Network, Scenario
from edge.simulators.transit import prato_feed_zip

START = datetime(2026, 11, 24, 7, 50, tzinfo=ZoneInfo("Europe/Rome"))  # a Tuesday
CANCELLED = "LAM-BLU_FER_0_0800"


@pytest.fixture
def played(prato_store: TransitStore) -> Iterator[tuple[TransitReader, ManualClock]]:
    clock = ManualClock(START)
    generator = FeedGenerator(
        Network.load(prato_feed_zip()), clock, Scenario(cancelled=(CANCELLED,), cancel_share=0)
    )
    server = GtfsRtServer(generator, port=0, refresh_s=0).start()
    config = ReaderConfig.model_validate(
        {"operator": OPERATOR, "source": "sim", "feeds": [{"url": f"{server.url}/gtfs-rt"}], "interval_s": 30}
    )
    reader = TransitReader(config, prato_store, None, wall=lambda: clock.now().timestamp())
    for _ in range(120):  # an hour, polled every 30 s
        clock.advance(30)
        reader.poll(clock.now().timestamp())
    yield reader, clock
    reader.http.close()
    server.stop()


def readings(reader: TransitReader, kind: str) -> list[dict[str, object]]:
    return [r for o in reader.rt.pending(100_000) if o.kind == kind for r in orjson.loads(o.readings)]


def test_the_reader_refuses_nothing_of_the_simulator_s_feed(
    played: tuple[TransitReader, ManualClock],
) -> None:
    reader, _ = played

    assert reader.rt.refusals() == []
    assert reader.stats.bodies == 120


def test_an_hour_of_the_morning_gives_positions_and_a_delay_per_stop_passed(
    played: tuple[TransitReader, ManualClock],
) -> None:
    reader, _ = played

    vehicles = readings(reader, "transit_vehicle")
    delays = readings(reader, "transit_delay")
    assert len(vehicles) > 1000
    by_status = Counter(r["fields"]["status"] for r in delays)  # type: ignore[index]
    assert by_status["scheduled"] > 200  # ~25 runs an hour on four lines, 9-10 stops each
    # The cancelled trip: each of its nine stops as its time came.
    cancelled = [r for r in delays if r["fields"]["trip"] == CANCELLED]  # type: ignore[index]
    assert [r["fields"]["status"] for r in cancelled] == ["cancelled"] * 9  # type: ignore[index]
    # The detour: LAM Blu trips skipped Viale Piave.
    piave = [r for r in delays if r["sensor"] == sensor_id("PO-PIAVE") and r["tags"] == {"route": "LAM-BLU"}]  # type: ignore[comparison-overlap]
    assert piave
    assert {r["fields"]["status"] for r in piave if r["fields"]["trip"] != CANCELLED} == {"skipped"}  # type: ignore[index]
    # One reading per run and stop: no stop event sent twice (the Circolare's runs share a trip).
    events = [(r["fields"]["trip"], r["fields"]["stop_sequence"], r["ts"]) for r in delays]  # type: ignore[index]
    assert len(events) == len(set(events))
    circolare = Counter(r["ts"][:13] for r in delays if r["fields"]["trip"] == "CIRC_ALL_0_template")  # type: ignore[index]
    assert len(circolare) >= 2  # its runs, every 15 minutes, each sent


def test_the_detour_alert_is_kept(played: tuple[TransitReader, ManualClock]) -> None:
    reader, _ = played

    detour = [a for a in reader.rt.alerts() if a["effect"] == "detour"]
    assert detour[0]["informed"] == [{"route_id": "LAM-BLU"}, {"stop_id": "PO-PIAVE"}]
    assert "sospesa per cantiere" in detour[0]["header_text"]
