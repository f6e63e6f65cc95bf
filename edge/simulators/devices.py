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
from edge.drivers.registry import Source
from edge.drivers.simulated.wire import counter_record, gps_sentences
from edge.simulators.clock import Clock
from edge.transports.pty import VirtualSerialPort

log = logging.getLogger(__name__)

__all__ = ["ChirpStackUplinks", "VirtualDevice", "counter_record", "gps_sentences", "serial_sink"]


def serial_sink(port: VirtualSerialPort, encode: Callable[[Reading], bytes]) -> Callable[[Reading], bool]:
    """Write each reading's bytes to a virtual serial port; False when the line cut them."""

    def send(r: Reading) -> bool:
        data = encode(r)
        return port.write(data) == len(data)

    return send


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

    def send(self, r: Reading) -> bool:
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
        return True

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class VirtualDevice:
    """Polls `source` on `clock` and sends every reading, encoded, to `sink`, in a thread.

    `sent` holds the readings the sink took whole: a sink returning False (a serial line whose
    buffer was full, so the bytes were cut, as a UART overrun would) did not send its reading."""

    def __init__(self, source: Source, clock: Clock, sink: Callable[[Reading], bool | None]) -> None:
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
                if self.sink(r) is not False:
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
