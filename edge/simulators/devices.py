"""Virtual devices: Prato's simulated sensors speaking the real devices' bytes.

A `VirtualDevice` polls a simulated driver's source (the same curves as `sim_*`) and sends each
reading through the real driver's encoder: NMEA sentences and `$TCR` records onto a serial line
(a pseudo-terminal, `edge.transports.pty`), Bosch parking payloads as ChirpStack v4 uplink events
onto an MQTT broker. A gateway then reads them through the real decoders, as it would in the street.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.contract import BrokerAddress, Reading
from edge.drivers.bosch_parking import encoder as bosch
from edge.drivers.nmea import encoder as nmea
from edge.drivers.registry import Source
from edge.drivers.traffic_counter import encoder as tcr
from edge.simulators.clock import Clock

log = logging.getLogger(__name__)


def gps_sentences(r: Reading) -> bytes:
    """One receiver epoch (RMC, VTG, GGA) for a `fleet` reading."""
    f = r.fields
    return nmea.epoch(r.ts, float(f["lat"]), float(f["lon"]), float(f["speed_kmh"]), float(f["heading_deg"]))


def counter_record(r: Reading) -> bytes:
    """The `$TCR` line for a `traffic` reading (its class mix made up from vehicles and heavy)."""
    f = r.fields
    return tcr.record(
        site=r.tags["site"],
        lane=int(r.tags["lane"]),
        direction=r.tags["direction"],
        end=r.ts,
        interval_s=int(f["interval_s"]),
        counts=tcr.split_classes(int(f["vehicles"]), int(f["heavy"])),
        speed_kmh=float(f["speed_kmh"]),
        occupancy_pct=float(f["occupancy_pct"]),
    )


@dataclass
class ChirpStackUplinks:
    """Publishes `parking_spot` readings as Bosch status uplinks, as ChirpStack's MQTT
    integration would: one topic per device, fCnt counting up per device from 0."""

    broker: str
    application_id: str
    euis: dict[str, str]  # sensor id -> DevEUI
    qos: int = 1
    fcnt: dict[str, int] = field(default_factory=dict)
    published: int = 0

    def __post_init__(self) -> None:
        address = BrokerAddress.parse(self.broker)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"chirpstack-sim-{id(self):x}")
        self.client.connect(address.host, address.port)
        self.client.loop_start()

    def send(self, r: Reading) -> None:
        eui = self.euis[r.sensor]
        fcnt = self.fcnt.get(eui, 0)
        self.fcnt[eui] = fcnt + 1
        payload = bosch.uplink_json(
            dev_eui=eui,
            application_id=self.application_id,
            f_port=1,
            payload=bosch.status(bool(r.fields["occupied"])),
            f_cnt=fcnt,
            ts=r.ts,
        )
        self.client.publish(
            bosch.uplink_topic(self.application_id, eui), payload, qos=self.qos
        ).wait_for_publish(10)
        self.published += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class VirtualDevice:
    """Polls `source` on `clock` and sends every reading, encoded, to `sink`, in a thread."""

    def __init__(self, source: Source, clock: Clock, sink: Callable[[Reading], object]) -> None:
        self.source = source
        self.clock = clock
        self.sink = sink
        self.sent: list[Reading] = []
        self.is_paused = threading.Event()  # a device switched off: it measures nothing meanwhile
        self._stepping = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="virtual-device", daemon=True)

    def step(self) -> int:
        with self._stepping:
            readings = self.source.poll(self.clock.now())
            if self.is_paused.is_set():
                return 0
            for r in readings:
                self.sink(r)
                self.sent.append(r)
            return len(readings)

    def pause(self) -> None:
        """Switch the device off; once this returns, it sends nothing more until `resume`."""
        with self._stepping:
            self.is_paused.set()

    def resume(self) -> None:
        self.is_paused.clear()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.step()
            except Exception:
                log.exception("virtual device failed")
                raise

    def start(self) -> VirtualDevice:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.source.close()
