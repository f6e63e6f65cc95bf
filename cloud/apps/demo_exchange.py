"""The demo's data exchange: a utility feeding its fleet through the push API, and a partner's
car parks arriving as NGSI-LD notifications from the partner's own context broker.

Every piece is a process, as it would be for real (each with its log in the demo's logs folder):

- `partner-broker`: the partner's context broker, the stand-in (`python -m cloud.dev.context_broker`);
- `sitroom exchange subscribe`, run once: our subscription on it, for `OffStreetParking`, with
  the partner organisation's API token for the broker to send back;
- `partner-platform`: the partner's platform upserting its car parks to its broker every few
  seconds (`python -m cloud.dev.partners parking`), which notifies our receiver;
- `utility-platform`: the utility's fleet platform posting its vans' positions to the push API
  (`python -m cloud.dev.partners fleet`).

The demo's API process serves the push API and the receiver (`sitroom cloud api --push`).

The hook (`cloud/apps/demo.py` calls nothing else)::

    exchange = DemoExchange(DemoExchangeSetup(...))
    lines = exchange.start()          # tokens, broker, subscription, the two platforms
    exchange.stopped_unexpectedly()   # names of its processes that died, for the progress loop
    counts = exchange.stop_senders()  # after the gateways: what the partners had acknowledged
    exchange.close()                  # in the demo's `finally`: every process of its own gone

`counts.pushed` are the readings the push API answered for, `counts.notified` the car-park
states the partner's broker accepted (and so notified): the demo adds both to the gateways'
published readings, which must all be in InfluxDB at the end.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson
from sqlalchemy.exc import IntegrityError, OperationalError

from cloud.core.errors import NotFoundError
from cloud.exchange.receiver import NOTIFY_PATH
from cloud.io.orgstore import OrgStore

UTILITY = "open-fiber"  # feeds its fleet through the push API
PARTNER = "comune-calenzano"  # shares its car parks over NGSI-LD
SUBSCRIBED_TYPES = ("OffStreetParking",)
BROKER, PARTNER_PLATFORM, UTILITY_PLATFORM = "partner-broker", "partner-platform", "utility-platform"


class DemoExchangeError(RuntimeError):
    """A piece of the exchange did not start; the message says which and where its log is."""


class Spawn(Protocol):
    """Starts `argv` as the demo's process `name`, with its output in the demo's logs."""

    def __call__(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]: ...


@dataclass(frozen=True, slots=True)
class DemoExchangeSetup:
    data_dir: Path  # tokens and the partners' status files go to data_dir/exchange
    logs_dir: Path
    env: dict[str, str]  # the demo's processes' environment
    api_url: str  # the demo's `sitroom cloud api --push`
    worksites_db: str  # its registry, where the organisations and their tokens are
    broker_port: int  # a free port for the partner's broker
    interval_s: float = 2.0  # how often each partner sends


@dataclass(frozen=True, slots=True)
class ExchangeCounts:
    pushed: int = 0
    notified: int = 0

    @property
    def total(self) -> int:
        return self.pushed + self.notified


def _wait(predicate: Callable[[], object], timeout_s: float, interval_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return False


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1, trust_env=False)
    except httpx.HTTPError:
        return False
    return True


class DemoExchange:
    def __init__(self, setup: DemoExchangeSetup, spawn: Spawn | None = None) -> None:
        self.setup = setup
        self.folder = setup.data_dir / "exchange"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._spawn = spawn or self._spawn_logged
        self._stopped: set[str] = set()

    # -- start ---------------------------------------------------------------------------------

    def start(self, timeout_s: float = 60.0) -> list[str]:
        """Tokens, the partner's broker, our subscription, the two platforms; what to print."""
        s = self.setup
        self.folder.mkdir(parents=True, exist_ok=True)
        tokens = self._tokens(timeout_s)
        broker_url = f"http://127.0.0.1:{s.broker_port}"
        self._start(BROKER, ["-m", "cloud.dev.context_broker", "--port", str(s.broker_port)])
        if not _wait(lambda: _answers(broker_url), timeout_s):
            raise DemoExchangeError(f"the partner's broker did not start; see {self._log(BROKER)}")
        if not _wait(lambda: _answers(s.api_url + "/openapi.json"), timeout_s):
            raise DemoExchangeError(f"the API did not start; see {s.logs_dir / 'api.log'}")
        self._check_api(tokens[UTILITY])
        self._subscribe(broker_url, tokens[PARTNER])
        self._start(
            PARTNER_PLATFORM,
            ["-m", "cloud.dev.partners", "parking", "--broker", broker_url, "--org", PARTNER,
             "--interval-s", str(s.interval_s), "--status", str(self._status(PARTNER_PLATFORM))],
        )  # fmt: skip
        self._start(
            UTILITY_PLATFORM,
            ["-m", "cloud.dev.partners", "fleet", "--api", s.api_url, "--org", UTILITY,
             "--token-file", str(tokens[UTILITY]), "--interval-s", str(s.interval_s),
             "--status", str(self._status(UTILITY_PLATFORM))],
        )  # fmt: skip
        return [
            f"  Push API     {s.api_url}/push/v1  ({UTILITY}'s fleet platform posts its vans' positions)",
            f"  NGSI-LD      {broker_url} ({PARTNER}'s context broker, a stand-in) notifies "
            f"{s.api_url}{NOTIFY_PATH} of its car parks",
        ]

    def _tokens(self, timeout_s: float) -> dict[str, Path]:
        """A fresh API token per organisation, once the API's demo data registered both."""
        store = self._orgs(timeout_s)
        try:
            if not _wait(lambda: self._registered(store), timeout_s):
                raise DemoExchangeError(f"{UTILITY} and {PARTNER} were not registered by the API's demo data")
            out = {}
            for org in (UTILITY, PARTNER):
                path = self.folder / f"{org}.token"
                path.touch(mode=0o600)
                path.write_text(store.issue_token(org, "demo exchange") + "\n", encoding="utf-8")
                out[org] = path
            return out
        finally:
            store.close()

    def _orgs(self, timeout_s: float) -> OrgStore:
        # The API process creates the registry's tables; two first migrations racing on one
        # SQLite file make one of them fail once.
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return OrgStore.open(self.setup.worksites_db)
            except (OperationalError, IntegrityError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    @staticmethod
    def _registered(store: OrgStore) -> bool:
        try:
            store.organisation(UTILITY)
            store.organisation(PARTNER)
        except (NotFoundError, OperationalError):
            return False
        return True

    def _check_api(self, token_file: Path) -> None:
        """The API on that port is the demo's: it knows the token just issued in its registry and
        serves the push API (a port found free may have been taken since by another process)."""
        token = token_file.read_text(encoding="utf-8").strip()
        url = self.setup.api_url
        mine = httpx.get(
            f"{url}/worksites",
            params={"limit": 1},
            headers={"Authorization": f"Bearer {token}"},
            trust_env=False,
        )
        paths = httpx.get(f"{url}/openapi.json", trust_env=False).json().get("paths", {})
        if mine.status_code != 200 or "/push/v1/positions" not in paths:
            raise DemoExchangeError(
                f"{url} is not the demo's API with the push API (HTTP {mine.status_code}; another process on "
                f"its port?); see {self.setup.logs_dir / 'api.log'}"
            )

    def _subscribe(self, broker_url: str, token_file: Path) -> None:
        notify_url = self.setup.api_url + NOTIFY_PATH
        argv = ["-m", "edge.cli", "exchange", "subscribe", "--broker", broker_url,
                "--notify-url", notify_url, "--token-file", str(token_file)]  # fmt: skip
        for entity_type in SUBSCRIBED_TYPES:
            argv += ["--type", entity_type]
        log = self.setup.logs_dir / "exchange-subscribe.log"
        with log.open("ab") as out:
            done = subprocess.run(  # the demo's own CLI
                [sys.executable, *argv], env=self.setup.env, stdout=out, stderr=subprocess.STDOUT, check=False
            )
        if done.returncode != 0:
            raise DemoExchangeError(f"`sitroom exchange subscribe` failed; see {log}")

    def _start(self, name: str, argv: list[str]) -> None:
        self.procs[name] = self._spawn(name, [sys.executable, *argv], self.setup.env)

    def _log(self, name: str) -> Path:
        return self.setup.logs_dir / f"{name}.log"

    def _status(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def _spawn_logged(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with self._log(name).open("ab") as log:
            return subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # Ctrl-C reaches the demo only; it stops the others in order
            )

    # -- while running ---------------------------------------------------------------------------

    def stopped_unexpectedly(self) -> list[str]:
        return [n for n, p in self.procs.items() if n not in self._stopped and p.poll() is not None]

    def counts(self) -> ExchangeCounts:
        """What the partners have had acknowledged so far (their status files)."""
        pushed = read_status(self._status(UTILITY_PLATFORM)).get("sent", 0)
        notified = read_status(self._status(PARTNER_PLATFORM)).get("accepted", 0)
        return ExchangeCounts(pushed=int(pushed), notified=int(notified))

    # -- stop ------------------------------------------------------------------------------------

    def stop_senders(self, timeout_s: float = 30.0) -> ExchangeCounts:
        """Stop both platforms (they finish the request in flight) and return their final counts."""
        self._terminate([PARTNER_PLATFORM, UTILITY_PLATFORM], timeout_s)
        return self.counts()

    def close(self, timeout_s: float = 10.0) -> None:
        """Every process of the exchange stopped (idempotent)."""
        self._terminate(list(self.procs), timeout_s)

    def _terminate(self, names: Sequence[str], timeout_s: float) -> None:
        for name in names:
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            self._stopped.add(name)
        for name in names:
            proc = self.procs.get(name)
            if proc is None:
                continue
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def read_status(path: Path) -> dict[str, Any]:
    """A partner's status file (written by `cloud.dev.partners`, which only `cloud/apps/demo.py`
    may import); empty before its first send."""
    try:
        data: dict[str, Any] = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data


__all__ = ["PARTNER", "UTILITY", "DemoExchange", "DemoExchangeError", "DemoExchangeSetup", "ExchangeCounts"]
