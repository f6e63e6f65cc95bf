"""`sitroom demo`: a simulated Prato streaming end to end on servers of its own.

It starts Mosquitto and InfluxDB (standard ports when free), the ingest and rules services,
one `sitroom gateway run` process per gateway config — processes, as on real street boxes —,
the data exchange (`demo_exchange.py`: a utility's fleet through the push API, a partner's car
parks as NGSI-LD notifications) and a bus operator's feeds with their reader
(`cloud/dev/demo_transit.py`: the Prato network imported, its GTFS-Realtime feed read by
`sitroom transit read`), then shows progress until `--duration` or Ctrl-C, and stops everything
in order: gateways, partners and the reader first, then it waits until ingest has stored what
they published, then the cloud services, then the servers.

As production does (docs/decisions/0014-demo-supervision.md): the broker is provisioned, with
an identity and ACL for every process and no anonymous client (`cloud/dev/demo_broker.py`);
the services run under a supervisor that restarts what crashes and counts it, as compose's
`restart:` does (`cloud/dev/supervisor.py`). Every child dies with the demo, even on kill -9
(`cloud/dev/processes.py`), and a demo finds what an earlier one left on its data folder —
processes still running, stores a crash left unopenable — before it starts
(`cloud/dev/demo_folder.py`, `cloud/dev/stores.py`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import orjson
import paho.mqtt.client as mqtt
import yaml
from sqlalchemy.exc import IntegrityError, OperationalError

from cloud.apps.api import ApiOptions, bus_network, create_app
from cloud.apps.console import open_console
from cloud.apps.demo_exchange import DemoExchange, DemoExchangeSetup, ExchangeCounts
from cloud.console.app import Console
from cloud.console.store import ConsoleStore
from cloud.core.alerts import AlertNotFoundError
from cloud.core.geo import ServiceAreas
from cloud.core.lifecycle import InvalidTransitionError
from cloud.core.settings import CloudSettings
from cloud.dev.apiserver import ThreadedApiServer
from cloud.dev.demo_broker import DemoBroker, DemoBrokerError, provision_demo_broker, rescue_registry
from cloud.dev.demo_data import DEMO_OPERATORS, MUNICIPALITY, add_demo_operators, demo_credentials, load_demo
from cloud.dev.demo_folder import DemoFolder, DemoFolderError
from cloud.dev.demo_transit import ON_ROUTE, READER, SIMULATOR, DemoTransit, DemoTransitError
from cloud.dev.demo_transit import OPERATOR as TRANSIT_OPERATOR
from cloud.dev.demo_transit import SOURCE as TRANSIT_SOURCE
from cloud.dev.injected import detector_alerts, injected_windows
from cloud.dev.report import render
from cloud.dev.servers import (
    Influxd,
    Mosquitto,
    ProvisionedMosquitto,
    ServerStartError,
    env_without_proxies,
    free_port,
)
from cloud.dev.stores import rescue
from cloud.dev.supervisor import RestartPolicy, ServiceSpec, Supervisor, SupervisorError
from cloud.io.influx import retention
from cloud.io.influx.client import InfluxClient, InfluxError
from cloud.io.mqtt import BrokerConnection
from cloud.provision.influx_users import InfluxUser, ensure_users
from cloud.rules.engine import DEFAULT_RULES
from cloud.rules.store import AlertStore
from cloud.worksites.store import WorksiteStore
from edge.contract import KINDS, SensorKind, format_ts, loads, topics
from edge.contract.areas import Areas, OutsideAreasError

log = logging.getLogger(__name__)

DATABASE = "sitroom"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sitroom" / "demo"


@dataclass(slots=True)
class DemoOptions:
    configs: list[Path]
    data_dir: Path
    duration_s: float | None = None
    speed: float = 60.0
    seed: int = 0
    summary: Path | None = None
    picture: Path | None = None
    progress_interval_s: float = 2.0
    mqtt_port: int | None = 1883  # None: any free port
    influx_port: int | None = 8086
    # Called with the demo's InfluxDB after the run, before the servers stop (checks, reports).
    on_finished: Callable[[InfluxClient], None] | None = None
    drain_timeout_s: float = 60.0
    fresh: bool = False  # start from an empty data folder (default: keep the console's stores)
    areas_file: Path | None = None  # the areas served (None: Prato alone)
    transit_feed: Path | None = None  # a GTFS feed for the bus simulator (default: the Prato network)


@dataclass(slots=True)
class Watch:
    """What the demo hears on the broker: gateway health, alerts, dead letters, ingest health;
    and apart, the feed readers' (publishers as gateways are, but no gateway)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    health: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    feed_keys: frozenset[str] = frozenset()  # `org/source` of the feed readers
    feeds: dict[str, dict[str, Any]] = field(default_factory=dict)  # their health
    feed_status: dict[str, str] = field(default_factory=dict)
    feed_deadletters: int = 0  # the entities a reader refused (and any ingest refused of its readings)
    alerts_firing: list[dict[str, Any]] = field(default_factory=list)
    alerts_acknowledged: int = 0
    alerts_resolved: int = 0
    deadletters: int = 0
    ingest: dict[str, Any] = field(default_factory=dict)
    # The worksite API's coordination findings (conflicts, synergies): alerts no rule raised,
    # which therefore carry no alert-store id.
    worksite_findings: int = 0
    stored_before_restart: int = 0  # readings_written by ingest processes that came before

    def on_message(self, msg: mqtt.MQTTMessage) -> None:
        try:
            body = loads(bytes(msg.payload)) if msg.payload else {}
        except ValueError:
            return
        parts = msg.topic.split("/")
        with self.lock:
            if parts[2] == "alerts" and "id" not in body:
                self.worksite_findings += body.get("state") == "firing"
            elif parts[2] == "alerts":
                if body.get("state") == "firing":
                    self.alerts_firing.append(body)
                elif body.get("state") == "acknowledged":
                    self.alerts_acknowledged += 1
                else:
                    self.alerts_resolved += 1
            elif parts[2] == "deadletter":
                if "/".join(parts[3:5]) in self.feed_keys:
                    self.feed_deadletters += 1
                else:
                    self.deadletters += 1
            elif parts[2] == "services":
                self.ingest = body
            elif parts[-1] == "health":
                key = f"{parts[2]}/{parts[3]}"
                (self.feeds if key in self.feed_keys else self.health)[key] = body
            elif parts[-1] == "status":
                key = f"{parts[2]}/{parts[3]}"
                (self.feed_status if key in self.feed_keys else self.status)[key] = str(body.get("state"))

    def ingest_started(self) -> None:
        """A new ingest process counts from 0: what its predecessor wrote stays counted."""
        with self.lock:
            self.stored_before_restart += int(self.ingest.get("readings_written", 0))
            self.ingest = {}

    def published(self) -> int:
        """Readings the gateways and the feed readers published (their health says so)."""
        with self.lock:
            reports = [*self.health.values(), *self.feeds.values()]
            return sum(int(h.get("readings_published", 0)) for h in reports)

    def feed_published(self) -> int:
        with self.lock:
            return sum(int(h.get("readings_published", 0)) for h in self.feeds.values())


def count_stored(influx: InfluxClient) -> int:
    """Readings in InfluxDB, counted on each kind's first (required) field."""
    total = 0
    for spec in KINDS.values():
        try:
            # Names come from the contract's declarations, never from input.
            q = f'SELECT count("{spec.fields[0].name}") FROM "{spec.kind.value}"'  # noqa: S608
            series = influx.series(q)
        except InfluxError:
            continue
        total += sum(int(s["values"][0][1]) for s in series if s.get("values"))
    return total


def count_worksite_points(influx: InfluxClient) -> int:
    """Points the rules service wrote from the worksite registry (cloud/worksites/snapshot.py)."""
    try:
        series = influx.series('SELECT count("active") FROM "worksite"')
    except InfluxError:
        return 0
    return sum(int(s["values"][0][1]) for s in series if s.get("values"))


def live_worksites_on_routes(influx: InfluxClient) -> dict[str, list[str]]:
    """Each live worksite the rules service found on bus routes (its `worksite_route` points,
    cloud/worksites/snapshot.py) with the routes' names."""
    q = (
        'SELECT last("name") AS "name", last("active") AS "active" FROM "worksite_route" '
        'GROUP BY "id", "route"'
    )
    try:
        series = influx.series(q)
    except InfluxError:
        return {}
    found: dict[str, list[str]] = {}
    for s in series:
        _t, name, active = s["values"][-1]
        if active == 1:
            found.setdefault(s["tags"]["id"], []).append(str(name))
    return {ws: sorted(names) for ws, names in sorted(found.items())}


# A run's stream starts empty every time: old broker sessions and old points would skew its
# counts (published == stored). What operators made in the console stays (`KEPT_STORES`).
RUN_STATE = ("mosquitto", "influxdb", "gateways", "logs", "exchange", "influx-users.json", "transit")
ALERTS_DB = "alerts.db"
WORKSITES_DB = "worksites/worksites.db"
CONSOLE_DB = "console/console/console.db"  # start_console(DIR/console) → its folder `console`


def _opens_alerts(path: Path) -> None:
    AlertStore(f"sqlite:///{path}").close()


def _opens_worksites(path: Path) -> None:
    WorksiteStore.open(f"sqlite:///{path}", areas=ServiceAreas.load()).close()


def _opens_console(path: Path) -> None:
    ConsoleStore(f"sqlite:///{path}").engine.dispose()


# The stores a run keeps from the one before (the worksites, operators, posts and alert
# history people made in the console), each with what opens it: checked before anything starts.
KEPT_STORES: tuple[tuple[str, Callable[[Path], None]], ...] = (
    (ALERTS_DB, _opens_alerts),
    (WORKSITES_DB, _opens_worksites),
    (CONSOLE_DB, _opens_console),
)


class DemoError(RuntimeError):
    """Why the demo cannot run, in one line (the CLI prints it, never a traceback)."""


class Demo:
    def __init__(self, opts: DemoOptions) -> None:
        self.opts = opts
        self.watch = Watch(feed_keys=frozenset({f"{TRANSIT_OPERATOR}/{TRANSIT_SOURCE}"}))
        # The bus operator's feeds and their reader (cloud/dev/demo_transit.py).
        self.transit = DemoTransit(
            opts.data_dir,
            registry_db=f"sqlite:///{opts.data_dir / WORKSITES_DB}",
            port=free_port(),
            speed=opts.speed,
            feed=opts.transit_feed,
            areas_file=opts.areas_file,
        )
        self.logs_dir = opts.data_dir / "logs"
        self.reader: tuple[str, str] = ("", "")
        self.acked: int | None = None  # the alert the demo's operator acknowledged
        self.api_url = ""
        self.exchange: DemoExchange | None = None
        self.exchanged = ExchangeCounts()
        self.folder = DemoFolder(opts.data_dir)
        self.supervisor: Supervisor | None = None

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        assert self.supervisor is not None
        self.supervisor.start(
            ServiceSpec(
                name,
                [sys.executable, "-m", "edge.cli", "-v", *args],
                env=env,
                log=self.logs_dir / f"{name}.log",
                # As compose runs them (docker-compose.yml): back after a crash, counted.
                restart=RestartPolicy.UNLESS_STOPPED,
            )
        )

    def _started(self, name: str, pid: int) -> None:
        self.folder.record(name, pid)
        if name == "ingest":
            self.watch.ingest_started()

    def _stop(self, names: list[str]) -> None:
        if self.supervisor is not None:
            self.supervisor.stop(names)

    def run(self, stop: threading.Event) -> dict[str, Any]:
        """The whole run on the data folder, which this process holds until it returns."""
        try:
            self.folder.claim()
        except DemoFolderError as exc:
            raise DemoError(str(exc)) from None
        try:
            return self._run(stop)
        except (DemoFolderError, DemoBrokerError, DemoTransitError, SupervisorError, ServerStartError) as exc:
            raise DemoError(str(exc)) from None
        finally:
            self.folder.end()
            self.folder.release()

    def _start_from(self) -> None:
        """What an earlier run left: its processes stopped, its stream emptied, the stores it
        kept checked (and rescued), or everything emptied with --fresh."""
        opts = self.opts
        stopped = self.folder.stop_leftovers()
        if stopped:
            out(f"  stopped what an earlier run left running here: {', '.join(map(str, stopped))}")
        if opts.fresh:
            self.folder.empty()
            out("  --fresh: started from an empty data folder")
        else:
            self.folder.reset(RUN_STATE)
            aside = opts.data_dir / "damaged" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            said = rescue_registry(opts.data_dir / "provision", aside)
            if said is not None:
                out(f"  {said}")
            for name, opens in KEPT_STORES:
                rescued = rescue(opts.data_dir / name, aside, opens)
                if rescued is not None:
                    out(f"  {rescued.line} (--fresh starts from an empty data folder)")
        self._open_stores()
        self._close_old_alerts()
        self.logs_dir.mkdir(parents=True, exist_ok=True)

    def _open_stores(self) -> None:
        """Create (or migrate) every store before any service opens it: the services, the API
        and the console starting together would race to create the same tables."""
        for name, opens in KEPT_STORES:
            path = self.opts.data_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                opens(path)
            except Exception as exc:  # noqa: BLE001 (whatever it is, the user's way out is the same)
                why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                fix = "`--fresh` starts from an empty data folder"
                raise DemoError(f"cannot open {path} ({why}): {fix}") from None
        self.transit.prepare()  # its tables in the registry's database, before the API starts

    def _close_old_alerts(self) -> None:
        """Alerts an earlier run left active are resolved: the engine that raised them is gone,
        and this run's engine would only count its own as duplicates of them."""
        path = self.opts.data_dir / ALERTS_DB
        if not path.exists():
            return
        store = AlertStore(f"sqlite:///{path}")
        try:
            active = store.active()
            for a in active:
                with contextlib.suppress(AlertNotFoundError, InvalidTransitionError):
                    store.resolve(a.id, by="demo", note="the demo run that raised it ended")
        finally:
            store.close()
        if active:
            n = len(active)
            out(f"  {n} alert{'' if n == 1 else 's'} left active by an earlier run resolved (history kept)")

    def _run(self, stop: threading.Event) -> dict[str, Any]:  # noqa: PLR0915  (one linear script)
        opts = self.opts
        out(f"Situation Room demo — data in {opts.data_dir}")
        try:
            self._start_from()
        except OSError as exc:  # a file of the folder that cannot be moved, read or removed
            raise DemoError(f"{exc}: `--fresh` starts from an empty data folder") from None
        self.folder.begin()
        started = datetime.now(UTC)
        speed = opts.speed
        horizon = opts.duration_s if opts.duration_s is not None else 3600.0
        sim_start = started - timedelta(seconds=horizon * (speed - 1))

        mqtt_port = free_port(opts.mqtt_port)
        broker = provision_demo_broker(
            opts.data_dir / "provision",
            port=mqtt_port,
            persistence=opts.data_dir / "mosquitto",
            configs=opts.configs,
            feed=LEGACY_FEED,
        )
        mosquitto = ProvisionedMosquitto(opts.data_dir / "mosquitto", broker.config, mqtt_port)
        influxd = Influxd(opts.data_dir / "influxdb", free_port(opts.influx_port), auth=True)
        self.supervisor = Supervisor(on_start=self._started, on_event=lambda text: out(f"  {text}"))
        watcher: BrokerConnection | None = None
        feed: BrokerConnection | None = None
        influx: InfluxClient | None = None
        summary: dict[str, Any] = {}
        stop_console: Callable[[], None] | None = None
        try:
            for server in (mosquitto, influxd):
                server.start()
                assert server.proc is not None
                self.folder.record(server.name, server.proc.pid)
            self.folder.record_url("mqtt", mosquitto.url)
            self.folder.record_url("influxdb", influxd.url)
            users = self._influx_users(influxd.url)
            identities = opts.data_dir / "provision"
            out(f"  MQTT broker  {mosquitto.url}  (no anonymous client; identities in {identities})")
            out(
                f"  InfluxDB     {influxd.url}  (database {DATABASE!r}; authentication on, "
                f"users in {self.opts.data_dir / 'influx-users.json'})"
            )
            admin, admin_password = users["admin"]
            influx = InfluxClient(influxd.url, DATABASE, username=admin, password=admin_password)
            influx.create_database()
            # The cloud services write as a WRITE-only user, which may not manage retention: do it here.
            settings = CloudSettings()
            retention.ensure(
                influx, raw_retention=settings.raw_retention, rollup_retention=settings.rollup_retention
            )
            self.reader = users["reader"]
            env = {
                **env_without_proxies(),
                "SITROOM_MQTT_URL": mosquitto.url,
                "SITROOM_INFLUX_URL": influxd.url,
                "SITROOM_INFLUX_DB": DATABASE,
                "SITROOM_INFLUX_USERNAME": users["writer"][0],
                "SITROOM_INFLUX_PASSWORD": users["writer"][1],
                "SITROOM_STATS_INTERVAL_S": "2",
                "SITROOM_ALERTS_DB": f"sqlite:///{opts.data_dir / ALERTS_DB}",
                # The rules service writes the registry's state to InfluxDB (Worksites dashboard).
                "SITROOM_WORKSITES_DB": f"sqlite:///{opts.data_dir / WORKSITES_DB}",
                "SITROOM_WORKSITE_SNAPSHOT_S": "10",
                # Every process checks the same areas: gateways where they stand, the API worksites.
                **({"SITROOM_AREAS": str(opts.areas_file)} if opts.areas_file else {}),
            }
            watcher = self._watch(broker)
            feed_id = f"sitroom-legacy-feed-{os.getpid()}"
            # An idle paho client stopped from another thread may log a spurious "not connected"
            # error as its loop ends: the feed's messages were acknowledged long before.
            logging.getLogger(f"paho.{feed_id}").setLevel(logging.CRITICAL)
            feed = BrokerConnection(broker.feed_address(), client_id=feed_id, persistent=False).start()
            self._start_cloud_services(env, broker)
            stop_console = self._start_console(env, influxd.url)
            self.exchange = DemoExchange(
                DemoExchangeSetup(
                    opts.data_dir, self.logs_dir, env, self.api_url, env["SITROOM_WORKSITES_DB"], free_port()
                )
            )
            for line in self.exchange.start():
                out(line)
            gateways = []
            for cfg in opts.configs:
                name = f"gateway-{cfg.stem}"
                gateways.append(name)
                self._spawn(
                    name,
                    [
                        "gateway", "run", "--config", str(broker.gateways[str(cfg)]),
                        "--speed", str(speed), "--sim-start", sim_start.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        "--state-dir", str(opts.data_dir / "gateways"), "--seed", str(opts.seed),
                    ],
                    env,
                )  # fmt: skip
            out(f"  {len(gateways)} gateways, speed x{speed:g} (simulated time from {format_ts(sim_start)})")
            # After the gateways: each process's clock starts at its own start, and a feed ahead
            # of the gateways would move the rules' event time past them (gateway-silent).
            self._start_transit(env, broker, sim_start)
            out(
                f"  logs in {self.logs_dir}; stop with Ctrl-C"
                + (f" or after {opts.duration_s:g} s" if opts.duration_s else "")
            )
            injected = self._progress_until_done(stop, feed, len(gateways), env["SITROOM_ALERTS_DB"])
            published = self._drain(influx, gateways, [READER])
            self._stop(["rules", "ingest"])
            summary = self._summary(
                started, sim_start, published, count_stored(influx), gateways, mosquitto, influxd
            )
            summary["readings_pushed"] = self.exchanged.pushed
            summary["readings_notified"] = self.exchanged.notified
            summary["transit"] = self._transit_summary(influx)
            summary["dead_letters_injected"] = injected
            summary["worksite_points"] = count_worksite_points(influx)
            if opts.on_finished is not None:
                opts.on_finished(influx)
            if opts.picture is not None:
                out("Drawing the run …")
                summary["picture"] = str(render(influx, opts.picture, summary))
        finally:
            if stop_console is not None:
                stop_console()
            if self.exchange is not None:
                self.exchange.close()
            self.supervisor.close()
            for conn in (feed, watcher):
                if conn is not None:
                    conn.stop()
            if influx is not None:
                influx.close()
            influxd.stop()
            mosquitto.stop()
        return summary

    def _progress_until_done(
        self, stop: threading.Event, feed: BrokerConnection, n_gateways: int, alerts_db: str
    ) -> int:
        """Progress every few seconds until `--duration`, Ctrl-C or a service given up; how
        many bad messages the legacy feed sent."""
        opts = self.opts
        assert self.supervisor is not None
        t0 = time.monotonic()
        # Gateways report every few seconds: a rate over a 10 s window does not flicker to 0.
        window: deque[tuple[float, int]] = deque([(t0, 0)])
        injected = 0
        while not stop.wait(opts.progress_interval_s):
            now_m = time.monotonic()
            pub = self.watch.published()
            window.append((now_m, pub))
            while len(window) > 2 and now_m - window[1][0] >= 10:
                window.popleft()
            rate = (pub - window[0][1]) / max(now_m - window[0][0], 1e-6)
            elapsed = now_m - t0
            self._progress(elapsed, pub, rate, n_gateways)
            if not injected and elapsed >= min(10.0, (opts.duration_s or 30.0) / 3):
                injected = inject_bad_feed(feed)
                out(f"  a misconfigured legacy feed sends {injected} bad messages (to dead-letter)")
            self._acknowledge_first_alert(alerts_db)
            failed = dict(self.supervisor.failed)
            if self.exchange is not None:
                failed |= dict.fromkeys(self.exchange.stopped_unexpectedly(), "stopped")
            if failed:
                why = "; ".join(f"{name}: {reason}" for name, reason in failed.items())
                out(f"  stopped unexpectedly: {why} — see {self.logs_dir}")
                break
            if opts.duration_s is not None and elapsed >= opts.duration_s:
                break
        self._acknowledge_first_alert(alerts_db)  # if one came in the last seconds
        return injected

    def _drain(self, influx: InfluxClient, gateways: list[str], feeds: list[str]) -> int:
        """Stop the gateways, the partners and the feed readers, then wait until ingest stored
        what they published; how many."""
        out("Stopping gateways …")
        self._stop([*gateways, *feeds])
        if self.exchange is not None:
            self.exchanged = self.exchange.stop_senders()
        w = self.watch
        wait_until(
            lambda: (
                all(h.get("final") for h in [*w.health.values(), *w.feeds.values()])
                and len(w.health) >= len(gateways)
                and len(w.feeds) >= len(feeds)
            ),
            10,
        )
        self._stop([SIMULATOR])
        published = self.watch.published() + self.exchanged.total
        out(f"Waiting for ingest to store {published:,} readings …")
        deadline = time.monotonic() + self.opts.drain_timeout_s
        while time.monotonic() < deadline and count_stored(influx) < published:
            time.sleep(0.5)
        time.sleep(1.5)  # let the rules service write its last alerts
        self._wait_for_rules_points(influx)
        return published

    def _watch(self, broker: DemoBroker) -> BrokerConnection:
        """The demo's own eyes on the broker, as its `monitor` identity: it reads, never writes."""
        watcher = BrokerConnection(
            broker.service_address("demo"),
            client_id=f"sitroom-demo-{os.getpid()}",
            subscriptions=[
                (topics.ALL_HEALTH, 1),
                (topics.ALL_STATUS, 1),
                (topics.ALL_ALERTS, 1),
                (topics.ALL_DEADLETTERS, 1),
                (topics.service_health("ingest", "main"), 0),
            ],
            on_message=self.watch.on_message,
            persistent=False,
        ).start()
        if not watcher.connected.is_set():
            watcher.stop()
            log_path = self.opts.data_dir / "mosquitto" / "mosquitto.log"
            raise DemoError(f"the demo's broker refused the demo's own identity; see {log_path}")
        return watcher

    def _acknowledge_first_alert(self, alerts_db: str) -> None:
        """Anna, the municipality's operator, takes the first alert raised (as from the console):
        the rules service sends the acknowledgement on, and time to acknowledge has a value."""
        if self.acked is not None:
            return
        with self.watch.lock:
            first = next((a for a in self.watch.alerts_firing if a.get("id") is not None), None)
        if first is None:
            return
        self.acked = int(first["id"])
        user, org, *_ = DEMO_OPERATORS[0]  # the municipality's operator
        store = AlertStore(alerts_db)
        try:
            store.acknowledge(int(first["id"]), by=f"{org}/{user}", note="demo: on it")
        except (AlertNotFoundError, InvalidTransitionError) as exc:
            out(f"  could not acknowledge alert {first['id']}: {exc}")
        else:
            out(f"  {user} ({org}) acknowledges alert {first['id']} ({first.get('rule')})")
        finally:
            store.close()

    def _wait_for_rules_points(self, influx: InfluxClient) -> None:
        """Before the rules service stops: the acknowledgement and the worksites in InfluxDB."""
        if self.acked is not None:
            acks = 'SELECT count("ack_s") FROM "alerts" WHERE "state" = \'acknowledged\''
            wait_until(lambda: influx.series(acks) and self.watch.alerts_acknowledged, 10)
        wait_until(lambda: influx.series('SELECT count("active") FROM "worksite"'), 10)

    def _influx_users(self, url: str) -> dict[str, tuple[str, str]]:
        """Admin, writer (the cloud services) and reader (console, Grafana), with fresh random
        passwords kept in a 0600 file of the demo's folder, as `sitroom provision` would."""
        users = {
            role: (name, secrets.token_urlsafe(18))
            for role, name in (("admin", "admin"), ("writer", "sitroom-writer"), ("reader", "grafana-reader"))
        }
        path = self.opts.data_dir / "influx-users.json"
        path.touch(mode=0o600)
        path.write_bytes(
            orjson.dumps({role: {"username": u, "password": p} for role, (u, p) in users.items()})
        )
        ensure_users(
            url,
            DATABASE,
            admin=InfluxUser(*users["admin"]),
            writer=InfluxUser(*users["writer"]),
            reader=InfluxUser(*users["reader"]),
        )
        return users

    def _start_console(self, env: dict[str, str], influx_url: str) -> Callable[[], None]:
        """The operator console on the demo's stores, for a browser on this machine."""
        url, stop = start_console(
            self.opts.data_dir / "console",
            influx_url,
            influx_username=self.reader[0],
            influx_password=self.reader[1],
            alerts_db=env["SITROOM_ALERTS_DB"],
            worksites_db=env["SITROOM_WORKSITES_DB"],
            areas=ServiceAreas.load(self.opts.areas_file),
        )
        self.folder.record_url("console", url)
        out(f"  Console      {url}  ({demo_credentials()})")
        return stop

    def _start_transit(self, env: dict[str, str], broker: DemoBroker, sim_start: datetime) -> None:
        """The operator's feed server (the simulator, on the demo's clock), its static feed
        imported from it, then the reader under its own broker identity."""
        transit = self.transit
        self._spawn(SIMULATOR, transit.simulator_args(sim_start), env)
        imported = transit.import_network()
        self._spawn(READER, transit.reader_args(), env | broker.service_env(TRANSIT_SOURCE))
        self.folder.record_url("gtfs-rt", f"{transit.url}/gtfs-rt")
        out(f"  Transit      {transit.url}/gtfs-rt  ({imported}; read by {READER} as {TRANSIT_SOURCE})")

    def _transit_summary(self, influx: InfluxClient) -> dict[str, Any]:
        """What the reader published, what InfluxDB holds of it by kind, what was refused."""
        stored = {}
        for kind in (SensorKind.TRANSIT_VEHICLE, SensorKind.TRANSIT_DELAY):
            where = f"\"gateway\" = '{TRANSIT_SOURCE}'"  # ids of ours, never input
            q = f'SELECT count("{KINDS[kind].fields[0].name}") FROM "{kind.value}" WHERE {where}'  # noqa: S608
            try:
                stored[kind.value] = sum(int(s["values"][0][1]) for s in influx.series(q) if s.get("values"))
            except InfluxError:
                stored[kind.value] = 0
        w = self.watch
        with w.lock:
            refused = w.feed_deadletters
            status = dict(w.feed_status)
            on_route = [a for a in w.alerts_firing if a.get("rule") == ON_ROUTE]
        return {
            "operator": TRANSIT_OPERATOR,
            "source": TRANSIT_SOURCE,
            "feed_url": f"{self.transit.url}/gtfs-rt",
            "readings_published": w.feed_published(),
            "readings_stored": stored,
            "dead_letters": refused,
            "status": status,
            # The network seen by the other features: the rules service's `worksite_route`
            # points and its worksite-on-bus-route alerts (to the municipality and the operator).
            "live_worksites_on_routes": live_worksites_on_routes(influx),
            "worksite_on_route_alerts": len(on_route),
        }

    def _start_cloud_services(self, env: dict[str, str], broker: DemoBroker) -> None:
        """Ingest, rules and the worksite API, each as its own broker identity."""
        self._spawn("ingest", ["cloud", "ingest"], env | broker.service_env("ingest"))
        # The rules see the bus network imported beside the registry (`_start_transit`) and run
        # the bus network's rules beside the default ones.
        rules = ["cloud", "rules", "--rules", str(self.transit.rules_file(DEFAULT_RULES))]
        transit_db = {"SITROOM_TRANSIT_DB": env["SITROOM_WORKSITES_DB"]}
        self._spawn("rules", rules, env | broker.service_env("rules") | transit_db)
        # The worksite registry (issue 8): demo worksites of Prato, served with their map layers;
        # it publishes its coordination findings (conflicts, synergies) as retained alerts.
        api_port = free_port(8080)
        api_args = [
            "cloud", "api", "--db", env["SITROOM_WORKSITES_DB"], "--demo-data", "--port", str(api_port),
            "--mqtt-url", broker.url,
            # --push: it also takes data in (the push API, NGSI-LD notifications; demo_exchange.py).
            "--push",
        ]  # fmt: skip
        self._spawn("api", api_args, env | broker.service_env("api"))
        api_url = self.api_url = f"http://127.0.0.1:{api_port}"
        self.folder.record_url("worksites", f"{api_url}/docs")
        out(f"  Worksites    {api_url}/docs  (map: /feeds/live.geojson, /feeds/wzdx.json)")
        # The broker keeps nothing for a subscriber it has never seen: data published before
        # ingest's first subscription would be lost. Its first health report means it is in.
        if not wait_until(lambda: bool(self.watch.ingest), 60):
            raise DemoError(f"ingest did not start; see {self.logs_dir / 'ingest.log'}")
        # The rules service too: its detectors learn each series from its first reading (and
        # restore their checkpoint before they connect), so gateways start once it is in.
        rules_log = self.logs_dir / "rules.log"
        if not wait_until(lambda: "connected to" in rules_log.read_text(errors="replace"), 60):
            raise DemoError(f"the rules service did not start; see {rules_log}")
        time.sleep(0.5)  # from CONNACK to SUBACK

    def _progress(self, elapsed: float, published: int, rate: float, n_gateways: int) -> None:
        w = self.watch
        with w.lock:
            online = sum(1 for s in w.status.values() if s == "online")
            clocks = [str(h["clock"]) for h in w.health.values() if h.get("clock")]
            stored = w.stored_before_restart + int(w.ingest.get("readings_written", 0))
            alerts, dead = len(w.alerts_firing), w.deadletters
        sim = max(clocks)[:16].replace("T", " ") if clocks else "—"
        out(
            f"[{elapsed:5.0f} s] sim {sim}  gateways {online}/{n_gateways} online  "
            f"published {published:,} ({rate:,.0f}/s)  stored {stored:,}  "
            f"alerts {alerts}  dead letters {dead}"
        )

    def _summary(
        self,
        started: datetime,
        sim_start: datetime,
        published: int,
        stored: int,
        gateways: list[str],
        mosquitto: Mosquitto,
        influxd: Influxd,
    ) -> dict[str, Any]:
        w = self.watch
        restarts = self.supervisor.restarts if self.supervisor is not None else {}
        with w.lock:
            # The default rules' detector alerts, each explained by an injected anomaly or not.
            judged = detector_alerts(w.alerts_firing, injected_windows(self.opts.configs, sim_start))
            return {
                "detector_alerts": judged,
                "false_alarms": sum(1 for a in judged if a["injected"] is None),
                "simulated_hours": round((datetime.now(UTC) - sim_start).total_seconds() / 3600, 1),
                "readings_published": published,
                "readings_stored": stored,
                "alerts_raised": len(w.alerts_firing),
                "alerts_acknowledged": w.alerts_acknowledged,
                "alerts_resolved": w.alerts_resolved,
                "dead_letters": w.deadletters,
                "worksite_findings": w.worksite_findings,
                "gateways": len(gateways),
                "gateways_reporting": sorted(w.health),
                "started_at": format_ts(started),
                "duration_s": round((datetime.now(UTC) - started).total_seconds(), 1),
                "speed": self.opts.speed,
                "sim_start": format_ts(sim_start),
                "mqtt_url": mosquitto.url,
                "influx_url": influxd.url,
                "data_dir": str(self.opts.data_dir),
                # As compose's `restart:` would: every service that died and came back, counted.
                "restarts": restarts,
                "restarts_total": sum(restarts.values()),
                "alerts": [
                    {k: a.get(k) for k in ("rule", "org", "entity", "severity", "since", "message")}
                    for a in w.alerts_firing[:50]
                ],
            }


LEGACY_FEED = (MUNICIPALITY, "gw-legacy-feed")


def inject_bad_feed(conn: BrokerConnection) -> int:
    """What a misconfigured legacy feed sends: ingest must dead-letter each, and nothing else.

    The demo shows the dead-letter path working (and gives its dashboard panel data)."""
    org, gateway = LEGACY_FEED
    topic = topics.data(org, gateway, SensorKind.PARKING)
    now = format_ts(datetime.now(UTC))
    envelope = f'"v":1,"org":"{org}","gateway":"{gateway}","kind":"parking","seq":0,"sent_at":"{now}"'
    bad = [
        f'{{"v":1,"org":"{org}","readings":['.encode(),  # truncated: not JSON
        (  # a percentage where a count belongs, and a free-text zone with spaces and commas
            f'{{{envelope},"readings":[{{"sensor":"p-legacy","ts":"{now}",'
            '"fields":{"occupied":"87%","capacity":200,"occupancy_pct":87.0},'
            '"tags":{"zone":"Centro storico, lato nord"}}]}'
        ).encode(),
        (  # NaN, as Python's json.dumps writes it
            f'{{{envelope},"readings":[{{"sensor":"p-legacy","ts":"{now}",'
            '"fields":{"occupied":NaN,"capacity":200,"occupancy_pct":NaN}}]}'
        ).encode(),
    ]
    for payload in bad:
        conn.client.publish(topic, payload, qos=1)
    return len(bad)


def gateways_in(configs: list[Path], areas: Areas) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The gateway configs whose location lies in `areas` (or that have none: vehicles), and
    why each other one does not; a gateway would refuse to start outside them."""
    inside: list[Path] = []
    outside: list[tuple[Path, str]] = []
    for path in configs:
        try:
            location = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("location") or {}
            if location:
                areas.require(float(location["lat"]), float(location["lon"]))
        except OutsideAreasError as exc:
            outside.append((path, str(exc)))
            continue
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError):
            pass  # not ours to judge: the gateway reports its own config's problems
        inside.append(path)
    return inside, outside


def wait_until(predicate: Any, timeout_s: float, interval_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return True
        time.sleep(interval_s)
    return False


def out(text: str) -> None:
    # A closed terminal (SIGHUP) must not turn the orderly stop into a traceback.
    with contextlib.suppress(OSError):
        print(text, flush=True)  # noqa: T201  (the demo's progress is its user interface)


# Signals that end the demo in order, as Ctrl-C does: `kill`, and a terminal closing (SIGHUP).
# SIGKILL cannot be caught: the kernel kills the children then (cloud/dev/processes.py).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_demo(opts: DemoOptions) -> dict[str, Any]:
    """Run the demo; its summary. Raises `DemoError` (one line) when it cannot run."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    try:
        summary = Demo(opts).run(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if summary:
        out(f"Done: {done_line(summary)}")
        if "transit" in summary:
            out(f"Transit: {transit_line(summary['transit'])}")
        judged = summary["detector_alerts"]
        out(
            f"Detectors: {len(judged)} alerts, {summary['false_alarms']} false alarms "
            f"(alerts no injected anomaly explains) in {summary['simulated_hours']:g} simulated hours."
        )
        for a in judged[:10]:
            out(f"  [{a['injected'] or 'FALSE ALARM'}] {a['message']}")
        if "picture" in summary:
            out(f"Picture of the run: {summary['picture']}")
        if opts.summary is not None:
            opts.summary.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
            out(f"Summary written to {opts.summary}")
    return summary


def done_line(summary: dict[str, Any]) -> str:
    """`3,240 readings published (84 pushed, 84 notified), 3,240 stored, …, 1 restart (ingest 1).`"""
    total = int(summary.get("restarts_total", 0))
    which = ", ".join(f"{name} {n}" for name, n in summary.get("restarts", {}).items() if n)
    restarts = f"{total} restart{'' if total == 1 else 's'}" + (f" ({which})" if which else "")
    pushed, notified = summary.get("readings_pushed", 0), summary.get("readings_notified", 0)
    partners = f" ({pushed:,} pushed, {notified:,} notified)" if pushed or notified else ""
    return (
        f"{summary['readings_published']:,} readings published{partners}, "
        f"{summary['readings_stored']:,} stored, "
        f"{summary['alerts_raised']} alerts raised, {summary['dead_letters']} dead letters, "
        f"{summary['gateways']} gateways, {restarts}."
    )


def transit_line(transit: dict[str, Any]) -> str:
    """`1,234 readings of gtfs-rt-prato (in the counts above): 1,000 vehicle positions, 234 stop
    delays stored; 0 dead letters. 2 live worksites on bus routes (comune-prato-piave-fermata:
    2, Circolare, LAM Blu; ...), 6 worksite-on-bus-route alerts.`"""
    stored = transit.get("readings_stored", {})
    refused = int(transit.get("dead_letters", 0))
    on_routes: dict[str, list[str]] = transit.get("live_worksites_on_routes", {})
    alerts = int(transit.get("worksite_on_route_alerts", 0))
    which = "; ".join(f"{ws}: {', '.join(names)}" for ws, names in on_routes.items())
    return (
        f"{int(transit.get('readings_published', 0)):,} readings of {transit.get('source')} "
        f"(in the counts above): {stored.get('transit_vehicle', 0):,} vehicle positions, "
        f"{stored.get('transit_delay', 0):,} stop delays stored; "
        f"{refused} dead letter{'' if refused == 1 else 's'}. "
        f"{len(on_routes)} live worksite{'' if len(on_routes) == 1 else 's'} on bus routes"
        + (f" ({which})" if which else "")
        + f", {alerts} {ON_ROUTE} alert{'' if alerts == 1 else 's'}."
    )


# The demo's uploads may be phone photos; the API's default 2 MB body limit is raised to fit.
DEMO_MAX_BODY_BYTES = 10 * 1024 * 1024
_S = TypeVar("_S")


@contextmanager
def running_console(
    data_dir: Path,
    *,
    worksites: WorksiteStore,
    alerts: AlertStore | None,
    influx: InfluxClient | None,
    refresh_s: float = 2.0,
    max_upload_bytes: int = 8 * 1024 * 1024,
    port: int | None = None,
) -> Iterator[tuple[str, Console]]:
    """`with running_console(...) as (base_url, console):` the API with the console and the demo
    operators, served in a thread (the demo's own console, the console's tests and bench)."""
    transit = bus_network(worksites)
    console = open_console(
        data_dir,
        worksites=worksites,
        alerts=alerts,
        influx=influx,
        orgs=worksites.orgs,
        areas=worksites.areas,
        refresh_s=refresh_s,
        max_upload_bytes=max_upload_bytes,
        transit=transit,
    )
    add_demo_operators(console.store)
    options = ApiOptions(max_body_bytes=max(DEMO_MAX_BODY_BYTES, max_upload_bytes + 65536))
    app = create_app(worksites, options, alerts=alerts, console=console, transit=transit, influx=influx)
    console.start()
    try:
        with ThreadedApiServer(app, port=port) as server:
            try:
                yield server.url, console
            finally:
                console.stop()  # ends the open event streams, which the server would wait for
    finally:
        console.stop()


def _opened(open_store: Callable[[], _S], timeout_s: float = 30.0) -> _S:
    """Open a store, waiting while another process (the demo's API or rules service) creates
    its tables: two first migrations racing on one SQLite file make one of them fail once."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return open_store()
        except (OperationalError, IntegrityError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def start_console(
    data_dir: Path,
    influx_url: str | None,
    *,
    alerts_db: str | None = None,
    worksites_db: str | None = None,
    influx_db: str = "sitroom",
    port: int | None = None,
    influx_username: str | None = None,
    influx_password: str | None = None,
    areas: ServiceAreas | None = None,
) -> tuple[str, Callable[[], None]]:
    """Serve the console (uvicorn in a thread) with the demo operators; return (URL, stop).

    `alerts_db` is the rules service's alert store (`SITROOM_ALERTS_DB`), `worksites_db` the
    worksite registry; each defaults to a SQLite file under `data_dir` (demo worksites loaded).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    ws_url = worksites_db or f"sqlite:///{data_dir / 'worksites.db'}"
    ws = _opened(lambda: WorksiteStore.open(ws_url, areas=areas or ServiceAreas.load()))
    if worksites_db is None:
        load_demo(ws, datetime.now(UTC))
    alerts_url = alerts_db or f"sqlite:///{data_dir / 'alerts.db'}"
    alerts = _opened(lambda: AlertStore(alerts_url))
    influx = (
        InfluxClient(influx_url, influx_db, username=influx_username, password=influx_password)
        if influx_url
        else None
    )
    stack = ExitStack()
    if influx is not None:
        stack.callback(influx.close)
    base_url, _console = stack.enter_context(
        running_console(data_dir / "console", worksites=ws, alerts=alerts, influx=influx, port=port)
    )
    return f"{base_url}/console/", stack.close


def seed_registry(store: WorksiteStore) -> int:
    """Prato's demo organisations and worksites (dates relative to today); how many were new."""
    return load_demo(store, datetime.now(UTC))


def seed(store: WorksiteStore, console: Console | None) -> str:
    """`sitroom cloud api --demo-data`: Prato's organisations and worksites, the demo operators."""
    new = seed_registry(store)
    if console is not None:
        add_demo_operators(console.store)
    return f"demo worksites loaded: {new} new" + ("; " + demo_credentials() if console else "")
