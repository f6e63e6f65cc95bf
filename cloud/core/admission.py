"""The one verdict on a reading: the wire contract, the time limits and the sensor directory.

Every consumer of the data stream applies it, ingest before it writes and the rules before
they evaluate, so that a reading is either in the system or dead-lettered, never both::

    admission = Admission.from_settings(settings)
    admission.learn(where, payload)             # a gateway's retained meta (its sensors' kinds)
    judged = admission.admit(where, payload, now)
    judged.readings                             # admitted, in message order
    judged.rejects                              # refused, each with its ContractError

`admit` raises the ContractError that refuses a whole message (too large, not JSON, a bad
envelope, an envelope that contradicts its topic). Ingest reaches the same verdict on its fast
paths (cloud/ingest/fastpath.py: contract and time limits inline, `sensor_error` once per
series), checked against `judge` by hypothesis.

Refusals, by the `reason` their dead letter carries::

    ContractError               the contract's own: too_large, bad_json, schema, topic
    ├── PolicyError             policy          too far in the future, or too old to keep
    ├── UnknownSensorError      unknown_sensor  a gateway or sensor the installation records lack
    ├── SensorKindError         wrong_kind      not the kind its gateway declared for the sensor
    └── ForeignSensorError      forbidden       a sensor the records give to another organisation,
                                                named by a sender that names its sensors itself
                                                (a utility's fleet, a partner's entities)

Data that arrives over HTTP gets the same verdict (`cloud.ingest.direct`); a partner's own
entities (NGSI-LD in) get `for_partners()`'s, which our installation records cannot list.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cloud.core.directory import ForeignSensorError, SensorDirectory, SensorKindError, UnknownSensorError
from cloud.core.settings import CloudSettings
from edge.contract import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    ContractError,
    Envelope,
    GatewayMeta,
    Reading,
    RejectedReading,
    SchemaError,
    SensorKind,
    decode,
    decode_meta,
    format_ts,
    topics,
)
from edge.contract.topics import GatewayTopic


class PolicyError(ContractError):
    reason = "policy"


@dataclass(frozen=True, slots=True)
class TimeLimits:
    max_future: timedelta
    max_age: timedelta

    def check(self, reading: Reading, now: datetime) -> PolicyError | None:
        # A gateway with a wrong clock must not write into the future, where the point would
        # hide behind "now" on every dashboard and defeat staleness checks.
        if reading.ts > now + self.max_future:
            return PolicyError(
                f"more than {self.max_future.total_seconds():g} s in the future (now {format_ts(now)})",
                field="ts",
                value=format_ts(reading.ts),
            )
        if reading.ts < now - self.max_age:
            return PolicyError(
                f"older than {self.max_age / timedelta(days=1):g} days (now {format_ts(now)})",
                field="ts",
                value=format_ts(reading.ts),
            )
        return None


@dataclass(slots=True)
class Judged:
    """One data message's verdict: each reading admitted, or refused with its error."""

    envelope: Envelope
    verdicts: list[Reading | RejectedReading] = field(default_factory=list)  # in the message's order

    @property
    def readings(self) -> list[Reading]:
        return [v for v in self.verdicts if isinstance(v, Reading)]

    @property
    def rejects(self) -> list[RejectedReading]:
        return [v for v in self.verdicts if isinstance(v, RejectedReading)]


class Admission:
    """The verdict on readings, and what it learns from the gateways' declarations."""

    def __init__(
        self,
        limits: TimeLimits,
        *,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        directory: SensorDirectory | None = None,
        is_for_partners: bool = False,
    ) -> None:
        self.limits = limits
        self.max_payload_bytes = max_payload_bytes
        self.directory = directory if directory is not None else SensorDirectory()
        self.is_for_partners = is_for_partners
        # Bumped whenever a declaration changes a verdict: caches of earlier verdicts (the fast
        # paths' per-series prefixes) are stale from then on.
        self.generation = 0

    @classmethod
    def from_settings(cls, settings: CloudSettings, *, utilities: Iterable[str] = ()) -> Admission:
        """Limits and payload cap from the settings; installation records when a folder is set,
        with `utilities`, the organisations whose `fleet` pseudo-gateway may send."""
        directory = (
            SensorDirectory.from_config_files(Path(settings.sensor_directory).glob("*.yaml"), utilities)
            if settings.sensor_directory
            else SensorDirectory()
        )
        return cls(
            TimeLimits(
                max_future=timedelta(seconds=settings.max_future_s),
                max_age=timedelta(days=settings.max_age_days),
            ),
            max_payload_bytes=settings.max_payload_bytes,
            directory=directory,
        )

    def for_partners(self) -> Admission:
        """The verdict on a partner's own entities (NGSI-LD in, `cloud.exchange`): the same
        contract and time limits; of the directory, only that a sensor our records give to
        another organisation is not the partner's to write. Its entities are by nature in none
        of our installation records, and no gateway of ours declares them."""
        return Admission(
            self.limits,
            max_payload_bytes=self.max_payload_bytes,
            directory=self.directory,
            is_for_partners=True,
        )

    # -- what the gateways declare ---------------------------------------------------------------

    def learn(self, where: GatewayTopic, payload: bytes) -> GatewayMeta | None:
        """Take a gateway's retained meta (empty: withdrawn); raises ContractError for a bad one."""
        if not payload:
            self.directory.withdraw(where.org, where.gateway)
            self.generation += 1
            return None
        meta = decode_meta(payload, max_bytes=self.max_payload_bytes)
        if (meta.org, meta.gateway) != (where.org, where.gateway):
            raise SchemaError(
                f"the meta of {meta.org}/{meta.gateway} arrived on {where.org}/{where.gateway}'s topic",
                field="org/gateway",
                value=f"{meta.org}/{meta.gateway}",
            )
        self.directory.declare(meta)
        self.generation += 1
        return meta

    # -- the verdict -------------------------------------------------------------------------------

    def envelope_error(self, where: GatewayTopic, envelope: Envelope) -> ContractError | None:
        """A message whose envelope contradicts its topic is refused whole."""
        if (envelope.org, envelope.gateway, envelope.kind) == (where.org, where.gateway, where.kind):
            return None
        topic = topics.gateway_topic(where.org, where.gateway, where.channel)
        said = f"{envelope.org}/{envelope.gateway}/{envelope.kind.value}"
        return SchemaError(
            f"envelope says {said}, the topic says otherwise",
            field="org/gateway/kind",
            value=f"{topic}/{where.kind.value}" if where.kind else topic,
        )

    def sensor_error(self, org: str, gateway: str, sensor: str, kind: SensorKind) -> ContractError | None:
        """The directory's verdict on one series: installation records and declared kinds."""
        if self.is_for_partners:
            return self.directory.owner_error(org, sensor)
        return self.directory.check(org, gateway, sensor, kind)

    def reading_error(self, reading: Reading, now: datetime) -> ContractError | None:
        """The verdict on a reading the contract accepted: time limits, then the directory."""
        return self.limits.check(reading, now) or self.sensor_error(
            reading.org, reading.gateway, reading.sensor, reading.kind
        )

    def judge(self, payload: bytes, now: datetime) -> Judged:
        """Every reading of a data message admitted or refused; raises when the whole is refused."""
        decoded = decode(payload, max_bytes=self.max_payload_bytes)
        out = Judged(decoded.envelope)
        rejects = {rej.index: rej for rej in decoded.rejects}
        readings = iter(decoded.readings)
        for i in range(len(decoded.readings) + len(decoded.rejects)):
            if i in rejects:
                out.verdicts.append(rejects[i])
                continue
            reading = next(readings)
            err = self.reading_error(reading, now)
            out.verdicts.append(reading if err is None else RejectedReading(err, i, reading.sensor))
        return out

    def admit(self, where: GatewayTopic, payload: bytes, now: datetime) -> Judged:
        """`judge`, for a message that arrived on `where`: its envelope must say the same."""
        judged = self.judge(payload, now)
        err = self.envelope_error(where, judged.envelope)
        if err is not None:
            raise err
        return judged


__all__ = [
    "Admission",
    "ForeignSensorError",
    "Judged",
    "PolicyError",
    "SensorKindError",
    "TimeLimits",
    "UnknownSensorError",
]
