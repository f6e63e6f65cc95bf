"""Provisioning at city scale: bulk onboarding time, and how fast a revocation takes effect.

- onboard N gateways from one CSV (`sitroom provision gateway import`), then import it again
  (idempotent: nothing may change);
- with N gateways on a real Mosquitto running the generated config, revoke one and time until
  the broker refuses it (file rewrite + SIGHUP + Mosquitto rereading N password/ACL entries).

    .venv/bin/python bench/provision.py [--gateways 500]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from click.testing import CliRunner
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from cloud.apps.cli.provision import group
from cloud.dev.servers import Mosquitto, free_port
from cloud.provision.broker import paths
from cloud.provision.registry import IdentityRegistry


def cli(folder: Path, *args: str) -> str:
    result = CliRunner().invoke(group, ["--dir", str(folder), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


class Broker(Mosquitto):
    def __init__(self, reg: IdentityRegistry, port: int) -> None:
        super().__init__(reg.folder / "broker-log", port)
        self.generated = paths(reg)["conf"]

    @property
    def config_path(self) -> Path:
        return self.generated

    def write_config(self) -> Path:
        return self.generated


def refused(port: int, username: str, password: str) -> bool:
    verdict: list[bool] = []
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-probe")
    client.username_pw_set(username, password)

    def on_connect(_c: object, _u: object, _f: object, rc: ReasonCode, _p: object = None) -> None:
        verdict.append(rc.is_failure)
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    done.wait(10)
    client.disconnect()
    client.loop_stop()
    return verdict == [True]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gateways", type=int, default=500)
    args = parser.parse_args()
    n = args.gateways
    print(f"{platform.node()} {os.cpu_count()} cores, python {platform.python_version()}, {n} gateways")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "prov"
        port = free_port()
        cli(folder, "ca", "init")
        cli(folder, "broker", "--port", str(port), "--tls-port", str(free_port()))
        sheet = Path(tmp) / "gateways.csv"
        rows = [
            f'gw-{i:04d},comune-prato,,43.88,11.10,,,"driver=sim_traffic,id=t-{i:04d},site=roma,direction=inbound",'
            for i in range(n)
        ]
        sheet.write_text("id,org,name,lat,lon,location,from,sensors,auth\n" + "\n".join(rows) + "\n")

        t0 = time.perf_counter()
        cli(folder, "gateway", "import", str(sheet))
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = cli(folder, "gateway", "import", str(sheet))
        second = time.perf_counter() - t0
        assert f"0 added, 0 updated, {n} unchanged" in out, out.splitlines()[-1]
        print(f"import {n} gateways: {first:.2f} s ({n / first:.0f}/s); again (no change): {second:.2f} s")

        broker = Broker(IdentityRegistry(folder), port).start()
        try:
            victim = "gw-0007"
            password = (folder / "identities" / victim / "password").read_text().strip()
            assert not refused(port, victim, password)
            t0 = time.perf_counter()
            cli(folder, "revoke", victim)
            revoked = time.perf_counter() - t0
            while not refused(port, victim, password):
                time.sleep(0.005)
            effective = time.perf_counter() - t0
            print(
                f"revoke with {n} identities: command {revoked * 1000:.0f} ms,"
                f" refused by the broker after {effective * 1000:.0f} ms"
            )
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
