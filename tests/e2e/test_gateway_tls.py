"""The gateway over TLS with a client certificate (mutual TLS), against a real Mosquitto."""

from __future__ import annotations

import getpass
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_faults import SPEED, sim_start

from cloud.dev.servers import Mosquitto
from cloud.provision.ca import CertificateAuthority
from edge.simulators.clock import SimClock
from gateway.agent import Agent
from gateway.config import parse

from support import wait_until

pytestmark = pytest.mark.e2e


class TlsMosquitto(Mosquitto):
    """Mosquitto with one TLS listener that requires a client certificate from our CA."""

    def __init__(self, data_dir: Path, ca: Path, cert: Path, key: Path) -> None:
        super().__init__(data_dir)
        self.tls = (ca, cert, key)

    def write_config(self) -> Path:
        ca, cert, key = self.tls
        self.config_path.write_text(
            f"""listener {self.port} 127.0.0.1
allow_anonymous true
cafile {ca}
certfile {cert}
keyfile {key}
require_certificate true
persistence false
log_dest stderr
log_type all
user {getpass.getuser()}
"""
        )
        return self.config_path

    def _is_ready(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
        except OSError:
            return False
        return True


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca = CertificateAuthority(tmp_path / "pki")
    ca.init()
    files = {"ca": ca.cert_path}
    for name, issued in (
        ("server", ca.issue("broker", server_names=["127.0.0.1", "localhost"])),
        ("client", ca.issue("gw-tls")),
    ):
        (tmp_path / f"{name}.crt").write_bytes(issued.cert_pem)
        (tmp_path / f"{name}.key").write_bytes(issued.key_pem)
        files[f"{name}_cert"], files[f"{name}_key"] = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    return files


@pytest.fixture
def tls_broker(tmp_path: Path, pki: dict[str, Path]) -> Iterator[TlsMosquitto]:
    with TlsMosquitto(tmp_path / "broker", pki["ca"], pki["server_cert"], pki["server_key"]) as broker:
        yield broker


def run_agent(broker: TlsMosquitto, broker_cfg: dict[str, object], state: Path, until: str) -> Agent:
    config = parse(
        {
            "id": "gw-tls",
            "org": "comune-prato",
            "batch": {"max_interval_s": 0.2},
            "broker": {"url": f"mqtts://127.0.0.1:{broker.port}", "reconnect_max_s": 1, **broker_cfg},
            "sensors": [{"driver": "sim_fleet", "id": "v-bus-101", "route": "lam-blu"}],
        }
    )
    agent = Agent(config, clock=SimClock(SPEED, sim_start()), state_dir=state)
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    try:
        if until == "published":
            wait_until(
                lambda: agent.counters.readings_published > 50, 30, what=f"TLS publish\n{broker.log()}"
            )
        else:
            wait_until(lambda: agent.link.last_error, 30, what="a refused handshake")
    finally:
        stop.set()
        thread.join(60)
    return agent


def test_a_gateway_with_the_ca_and_a_client_certificate_publishes_over_tls(
    tls_broker: TlsMosquitto, pki: dict[str, Path], tmp_path: Path
) -> None:
    cfg = {
        "ca_file": str(pki["ca"]),
        "cert_file": str(pki["client_cert"]),
        "key_file": str(pki["client_key"]),
    }
    agent = run_agent(tls_broker, cfg, tmp_path / "state", "published")
    assert agent.link.connects >= 1
    assert agent.queue_depth == 0


def test_a_gateway_without_a_client_certificate_is_refused_and_keeps_its_readings(
    tls_broker: TlsMosquitto, pki: dict[str, Path], tmp_path: Path
) -> None:
    agent = run_agent(tls_broker, {"ca_file": str(pki["ca"])}, tmp_path / "state", "refused")
    assert agent.counters.readings_published == 0
    assert agent.link.connects == 0
    assert agent.queue_depth == agent.counters.readings_read > 0, "every reading stays spooled"
