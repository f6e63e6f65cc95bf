"""Which InfluxDB database each point goes to: the declared data policy (decision 0017).

InfluxDB 1.x grants READ per database, so separation is by database: the deployment's database
(`SITROOM_INFLUX_DB`, `sitroom`) holds the *shared* layers every organisation reads; a
*private* measurement's points go to the database of the organisation in their `org` tag
(`{database}_{org}`), which only that organisation's readers and the municipalities' read.
What is shared and what is private is a file, one line per measurement:

    private_database: "{database}_{org}"
    measurements:
      parking: shared        # a sensor kind (edge/contract/kinds.py)
      fleet: private
      alerts: private        # addressed: the database of the organisation it is for
      ...

Every measurement of cloud/io/influx/schema.py (the contract's kinds and the cloud's own) must
be listed, so a new kind (transit, EV charging) is one more line; a private one must carry the
`org` tag. Without a policy file everything stays in the one database, as before.

`route(line)` reads a line's measurement and `org` tag (ours are never escaped: ids are
`[a-z0-9-]`); ingest's hot path routes a whole message by its topic's org and kind instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cloud.io.influx.client import InfluxClient
from cloud.io.influx.schema import measurements
from edge.contract import topics

Visibility = Literal["shared", "private"]
_ORG_TAG = re.compile(r",org=([a-z0-9][a-z0-9-]*)[, ]")


class DataPolicyError(ValueError):
    """A policy file that cannot be used; `problems` are `path: problem` lines."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    private_database: str = Field(default="{database}_{org}", max_length=64)
    measurements: dict[str, Visibility]

    @field_validator("private_database")
    @classmethod
    def _pattern(cls, value: str) -> str:
        if "{org}" not in value or not re.fullmatch(r"[A-Za-z0-9_{}-]+", value):
            raise ValueError(f"must contain {{org}} and only letters, digits, _ and -: {value!r}")
        try:
            value.format(database="d", org="o")
        except (KeyError, IndexError, ValueError):
            raise ValueError(f"only {{database}} and {{org}} may be filled in: {value!r}") from None
        return value


@dataclass(frozen=True, slots=True)
class DataPolicy:
    """Where each measurement's points live; `private` names the private measurements."""

    database: str  # the shared one
    private: frozenset[str] = frozenset()
    private_pattern: str = "{database}_{org}"
    source: str = "(one database)"
    _cache: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def single(cls, database: str) -> DataPolicy:
        """No separation: every point in `database` (no policy file)."""
        return cls(database)

    @classmethod
    def load(cls, path: Path | str | None, database: str) -> DataPolicy:
        """The policy of the file at `path` over the shared `database` (None: `single`)."""
        if path is None:
            return cls.single(database)
        source = str(path)
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise DataPolicyError(source, [f"cannot read it ({exc})"]) from None
        try:
            parsed = PolicyFile.model_validate(raw or {})
        except ValidationError as exc:
            raise DataPolicyError(
                source,
                [f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()],
            ) from None
        declared = measurements()
        problems = [
            f"measurements.{name}: not a measurement we write (cloud/io/influx/schema.py)"
            for name in parsed.measurements
            if name not in declared
        ]
        problems += [
            f"measurements: {name} is missing: add `{name}: shared` or `{name}: private`"
            for name in declared
            if name not in parsed.measurements
        ]
        problems += [
            f"measurements.{name}: private, but its points carry no org tag to choose a database by"
            for name, visibility in parsed.measurements.items()
            if visibility == "private" and name in declared and not declared[name].has_org
        ]
        if problems:
            raise DataPolicyError(source, problems)
        private = frozenset(n for n, v in parsed.measurements.items() if v == "private")
        return cls(database, private, parsed.private_database, source)

    @property
    def is_separated(self) -> bool:
        return bool(self.private)

    def is_private(self, measurement: str) -> bool:
        return measurement in self.private

    def private_database(self, org: str) -> str:
        name = self._cache.get(org)
        if name is None:
            name = self._cache[org] = self.private_pattern.format(database=self.database, org=org)
        return name

    def database_for(self, measurement: str, org: str | None) -> str:
        """Where a point of `measurement` tagged `org` goes; a private one of no organisation
        (a dead letter whose topic named none) stays shared, for the platform's operators."""
        if org and org != topics.UNKNOWN and measurement in self.private:
            return self.private_database(org)
        return self.database

    def route(self, line: str) -> str:
        """The database of one line of line protocol, by its measurement and `org` tag."""
        head = line.split(" ", 1)[0]
        measurement = head.split(",", 1)[0]
        if measurement not in self.private:
            return self.database
        found = _ORG_TAG.search(head + " ")
        return self.database_for(measurement, found.group(1) if found else None)

    def split(self, lines: Iterable[str]) -> dict[str, list[str]]:
        """`lines` by database, each list in the order given."""
        out: dict[str, list[str]] = {}
        for line in lines:
            out.setdefault(self.route(line), []).append(line)
        return out

    def databases(self, orgs: Iterable[str]) -> list[str]:
        """The shared database and the private one of each of `orgs`."""
        return (
            [self.database, *(self.private_database(o) for o in sorted(set(orgs)))]
            if self.private
            else [self.database]
        )

    def readable_by(self, org: str, *, is_municipality: bool, orgs: Sequence[str]) -> list[str]:
        """What `org`'s readers read: the shared layers and their own private data; a
        municipality reads every organisation's."""
        if not self.private:
            return [self.database]
        return self.databases(orgs if is_municipality else [org])

    def sources(self, measurement: str, orgs: Sequence[str], rp: str = "") -> str:
        """An InfluxQL FROM list reading `measurement` wherever the policy puts it for `orgs`:
        `"db"."rp"."m"` once when it is shared, once per private database when it is private."""
        policy = f'"{rp}"' if rp else ""  # `"db".."m"`: the database's default RP
        if measurement not in self.private:
            return f'"{self.database}".{policy}."{measurement}"'
        return ", ".join(f'"{self.private_database(o)}".{policy}."{measurement}"' for o in sorted(set(orgs)))


class RoutedInfluxClient(InfluxClient):
    """An `InfluxClient` on the policy's shared database whose writes that name no database go
    where the policy says, line by line: what every writer but ingest's hot path uses (alerts,
    worksite snapshots, ingest's own counters), so none of them needs to know the policy."""

    def __init__(self, url: str, policy: DataPolicy, **kwargs: Any) -> None:
        super().__init__(url, policy.database, **kwargs)
        self.policy = policy

    def write(
        self, lines: Sequence[str], *, database: str | None = None, retention_policy: str | None = None
    ) -> None:
        if database is not None or not self.policy.is_separated:
            super().write(lines, database=database, retention_policy=retention_policy)
            return
        for routed, part in self.policy.split(lines).items():
            super().write(part, database=routed, retention_policy=retention_policy)


__all__ = ["DataPolicy", "DataPolicyError", "PolicyFile", "RoutedInfluxClient", "Visibility"]
