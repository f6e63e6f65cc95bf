"""The demo's public transport: a bus operator's feeds, their static import and their reader.

A city runs the same three pieces (docs/transit.md): the operator's feed server — here the
simulator, `sitroom edge simulate gtfs-rt`, playing the project's own Prato network (or
`sitroom demo --transit-feed`) on the demo's clock; the static GTFS, imported from that
server's URL as a nightly job would; and `sitroom transit read`, polling the real-time feed
and publishing like a gateway under a broker identity of its own (role `feed`,
`cloud/dev/demo_broker.py`). The simulator and the reader are named services of the demo's
supervisor, restarted as the others are.

The rules service sees the network imported into the registry's database
(`SITROOM_TRANSIT_DB`) and runs, beside the default rules, the bus network's (`rules_file`): a
live worksite on a bus route tells the municipality and the operator (`worksite_on_route`),
buses later than that hour's usual near one fire `worksite_bus_delay`.

The static feed goes into two databases: the registry's (kept between runs), whose
`/feeds/transit/...` the API serves and whose worksites are matched with the routes; and the
reader's own (`transit/reader.db`, emptied with each run's stream, as the broker's sessions
are), which holds its outbox, its seq and the feed's last header time: a new run replays an
earlier clock, which a kept header time would call a feed going backwards, and so stale.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import yaml

from cloud.transit.store import TransitStore
from edge.contract.areas import load_areas
from edge.contract.gtfs.static import Area, FeedError

OPERATOR = "autolinee-toscane"  # the demo's fleet gateway (gw-fleet-at) speaks for it too
SOURCE = "gtfs-rt-prato"  # the reader's `gateway`, and its broker identity (svc.gtfs-rt-prato)
SIMULATOR = "gtfs-rt-simulator"  # the supervisor's service names
READER = "transit-reader"
FOLDER = "transit"  # in the data folder, emptied with each run's stream
# The bus network's rules (cloud/rules/kinds/), added to the default ones; the worksites they
# look at are the service's own registry (SITROOM_WORKSITES_DB, as for a file that names none).
ON_ROUTE = "worksite-on-bus-route"
RULES: tuple[dict[str, object], ...] = (
    {"rule": "worksite_on_route", "name": ON_ROUTE},
    {"rule": "worksite_bus_delay", "name": "bus-delay-near-worksite"},
)


class DemoTransitError(RuntimeError):
    """The demo's transit cannot start, said in one line."""


@dataclass(frozen=True, slots=True)
class DemoTransit:
    data_dir: Path
    registry_db: str  # the worksite registry's database URL (the API's)
    port: int  # the simulator's HTTP port
    speed: float
    feed: Path | None = None  # a GTFS feed (zip or folder) to play instead of the Prato network
    areas_file: Path | None = None  # the demo's areas (None: Prato alone)

    @property
    def area(self) -> Area:
        """Where the feed's stops and shapes may lie: the box around the demo's areas."""
        return Area(*load_areas(self.areas_file).bbox)

    @property
    def folder(self) -> Path:
        return self.data_dir / FOLDER

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def reader_db(self) -> str:
        return f"sqlite:///{self.folder / 'reader.db'}"

    @property
    def refresh_s(self) -> float:
        """How often the simulator makes a new snapshot (edge/cli.py): 10 simulated seconds."""
        return max(1.0, 10.0 / self.speed)

    def rules_file(self, base: Path) -> Path:
        """The demo rules service's rules file: `base`'s rules and the bus network's (`RULES`)."""
        rules = yaml.safe_load(base.read_text(encoding="utf-8"))
        rules["rules"] = [*rules["rules"], *RULES]
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / "rules.yaml"
        path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
        return path

    def prepare(self) -> None:
        """Create the transit tables before any service opens the registry's database."""
        self.folder.mkdir(parents=True, exist_ok=True)
        TransitStore.open(self.registry_db).close()

    def simulator_args(self, sim_start: datetime) -> list[str]:
        args = ["edge", "simulate", "gtfs-rt", "--port", str(self.port), "--speed", f"{self.speed:g}"]
        args += ["--sim-start", sim_start.strftime("%Y-%m-%dT%H:%M:%S%z")]
        return args + (["--feed", str(self.feed)] if self.feed is not None else [])

    def reader_args(self) -> list[str]:
        """`sitroom transit read` on a config written for the simulator's feed."""
        config = self.folder / "reader.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "operator": OPERATOR,
                    "source": SOURCE,
                    "feeds": [{"name": "all", "url": f"{self.url}/gtfs-rt"}],
                    # As a city sets them (docs/transit.md): polled at the feed's refresh
                    # rate, stale after a few refreshes that did not move its header.
                    "interval_s": self.refresh_s,
                    "timeout_s": 5.0,
                    "backoff_max_s": 10.0,
                    "stale_after_s": max(30.0, 6 * self.refresh_s),
                    "health_interval_s": 2.0,  # the demo's progress line counts from it
                },
                sort_keys=False,
            ),
            encoding="utf-8",
        )
        return ["transit", "read", str(config), "--db", self.reader_db]

    def import_network(self, timeout_s: float = 60.0) -> str:
        """Import the simulator's static feed (its /gtfs.zip, once it answers) into both
        databases; one line saying what was imported."""
        zip_url = f"{self.url}/gtfs.zip"
        static = self._fetch(zip_url, timeout_s)
        said = ""
        for db in (self.registry_db, self.reader_db):
            store = TransitStore.open(db)
            try:
                result = store.import_feed(static, operator=OPERATOR, area=self.area, source_name=zip_url)
            except FeedError as exc:
                raise DemoTransitError(f"the demo's GTFS feed is refused: {exc}") from None
            finally:
                store.close()
            if not said:
                f = result.feed
                state = "unchanged" if result.is_unchanged else "imported"
                trips, stops = f.counts.get("trips", 0), f.counts.get("stops", 0)
                said = f"{OPERATOR} version {f.version} {state}: {trips:,} trips, {stops:,} stops"
        return said

    @staticmethod
    def _fetch(url: str, timeout_s: float) -> bytes:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                response = httpx.get(url, timeout=10.0, trust_env=False)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                if time.monotonic() > deadline:
                    why = f"the GTFS-Realtime simulator does not answer {url}: {exc}"
                    raise DemoTransitError(why) from None
                time.sleep(0.3)
            else:
                return response.content
