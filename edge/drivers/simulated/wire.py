"""Simulated sensors through the real device bytes: encode each reading as its device would
send it, and decode it with the real driver, so demos and tests exercise the decoders.

`sim_fleet` goes through NMEA 0183 (RMC, VTG, GGA), `sim_traffic` through `$TCR` records and
`sim_parking_spot` through Bosch parking lot sensor uplinks in ChirpStack v4 events. A reading
the decoder rejects is a bug in an encoder or a decoder, and raises.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from edge.contract import Reading
from edge.drivers.bosch_parking import encoder as bosch
from edge.drivers.bosch_parking.decoder import BoschParkingDecoder, Device
from edge.drivers.framing import DecoderOutput
from edge.drivers.nmea import encoder as nmea
from edge.drivers.nmea.decoder import NmeaDecoder
from edge.drivers.registry import Source, SourceContext
from edge.drivers.traffic_counter import encoder as tcr
from edge.drivers.traffic_counter.decoder import TrafficCounterDecoder

SIM_APPLICATION = "00000000-0000-4000-8000-000000000000"


class WireError(RuntimeError):
    def __init__(self, sensor: str, decoded: DecoderOutput) -> None:
        self.sensor = sensor
        self.rejects = decoded.rejects
        super().__init__(f"{sensor}: the decoder refused the simulator's own bytes: {decoded.rejects}")


def gps_sentences(r: Reading) -> bytes:
    """One receiver epoch (RMC, VTG, GGA) for a `fleet` reading."""
    f = r.fields
    heading = round(float(f["heading_deg"]), 2) % 360  # a receiver says 0.00, never 360.00
    return nmea.epoch(r.ts, float(f["lat"]), float(f["lon"]), float(f["speed_kmh"]), heading)


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


def dev_eui(org: str, gateway: str, sensor: str) -> str:
    """A stable made-up DevEUI for a simulated bay (locally administered: first byte 0x02)."""
    return "02" + hashlib.sha256(f"{org}/{gateway}/{sensor}".encode()).hexdigest()[:14]


class WireSource:
    """Wraps a simulated source: its readings go out as device bytes and come back decoded; its
    health is the real decoder's (frames, GPS fix, radio quality), as a gateway reports it."""

    def __init__(
        self,
        inner: Source,
        encode: Callable[[Reading], bytes],
        decode: Callable[[bytes], DecoderOutput],
        stats: Callable[[], dict[str, Any]],
    ) -> None:
        self.inner = inner
        self._encode = encode
        self._decode = decode
        self._stats = stats

    def poll(self, now: datetime) -> list[Reading]:
        made = self.inner.poll(now)
        if not made:
            return []
        decoded = self._decode(b"".join(self._encode(r) for r in made))
        if decoded.rejects or len(decoded.readings) != len(made):
            raise WireError(made[0].sensor, decoded)
        return decoded.readings

    def close(self) -> None:
        self.inner.close()

    def stats(self) -> dict[str, Any]:
        return {"wire": True, **self._stats()}


def fleet_wire(inner: Source, ctx: SourceContext, sensor: str, tags: dict[str, str]) -> WireSource:
    decoder = NmeaDecoder(org=ctx.org, gateway=ctx.gateway, sensor=sensor, tags=tags)
    return WireSource(inner, gps_sentences, decoder.feed, decoder.stats)


def traffic_wire(inner: Source, ctx: SourceContext, sensor: str) -> WireSource:
    decoder = TrafficCounterDecoder(org=ctx.org, gateway=ctx.gateway, sensor=sensor)
    return WireSource(inner, counter_record, decoder.feed, decoder.stats)


def spot_wire(inner: Source, ctx: SourceContext, sensor: str, tags: dict[str, str]) -> WireSource:
    eui = dev_eui(ctx.org, ctx.gateway, sensor)
    decoder = BoschParkingDecoder(org=ctx.org, gateway=ctx.gateway, devices={eui: Device(sensor, tags)})
    fcnt = 0
    # Each bay its own radio link, steady; and a heartbeat (fPort 2, with the sensor's
    # temperature) every tenth uplink, starting with the first, as a Bosch PLS sends them.
    spread = int(eui[2:6], 16)
    rssi, snr = -72 - spread % 40, round(9.5 - (spread % 23) / 2, 1)

    def uplink(r: Reading) -> bytes:
        nonlocal fcnt
        fcnt += 1
        occupied = bool(r.fields["occupied"])
        if fcnt % 10 == 1:
            port, payload = 2, bosch.heartbeat(occupied, temperature_c=8 + spread % 7 + r.ts.hour // 3)
        else:
            port, payload = 1, bosch.status(occupied)
        return bosch.uplink_json(
            dev_eui=eui, application_id=SIM_APPLICATION, f_port=port, payload=payload, f_cnt=fcnt, ts=r.ts,
            rssi=rssi, snr=snr,
        )  # fmt: skip

    def decode(events: bytes) -> DecoderOutput:
        out = DecoderOutput()
        for event in events.split(b"\n"):
            if event:
                out.extend(decoder.uplink(event))
        return out

    return WireSource(inner, lambda r: uplink(r) + b"\n", decode, decoder.stats)
