"""Helpers of the HTTP ways-in tests: a client for the running API, batches, counts in InfluxDB."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from cloud.ingest.direct import DirectIngest
from cloud.io.influx.client import InfluxClient
from edge.contract import format_ts

UTILITY = "alia"
PARTNER = "firenze"  # a partner organisation sending NGSI-LD notifications
_ids = itertools.count(1)


@dataclass
class WaysInClient:
    """The running API with its ways in, seen from a test: a client, tokens, counts in InfluxDB."""

    url: str
    client: httpx.Client
    tokens: dict[str, str]
    influx: InfluxClient
    direct: DirectIngest

    def auth(self, org: str = UTILITY) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[org]}"}

    def push(
        self,
        body: Any,
        *,
        org: str = UTILITY,
        batch_id: str | None = None,
        path: str = "/push/v1/readings",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        sent = {**self.auth(org), "Idempotency-Key": batch_id or f"b-{next(_ids)}", **(headers or {})}
        return self.client.post(path, content=content, headers=sent)

    def stored(self, kind: str = "fleet", org: str = UTILITY) -> int:
        first = {"fleet": "lat", "parking": "occupied", "ev_charging": "capacity", "traffic": "vehicles"}[
            kind
        ]
        return _count(self.influx, f'SELECT count("{first}") FROM "{kind}" WHERE "org" = \'{org}\'')

    def dead_letters(self, org: str = UTILITY, reason: str | None = None) -> int:
        where = f"\"org\" = '{org}'" + (f" AND \"reason\" = '{reason}'" if reason else "")
        return _count(self.influx, f'SELECT count("count") FROM "sitroom_deadletter" WHERE {where}')


def _count(influx: InfluxClient, q: str) -> int:
    series = influx.series(q)
    return sum(int(s["values"][0][1]) for s in series)


def now_ts(seconds_ago: float = 0) -> str:
    return format_ts(datetime.now(UTC) - timedelta(seconds=seconds_ago))


def fix(sensor: str, i: int = 0, **fields: Any) -> dict[str, Any]:
    """One fleet reading in wire form, `i` milliseconds apart from its neighbours."""
    values = {"lat": 43.8777, "lon": 11.1022, "speed_kmh": 31.0, "heading_deg": 270.0} | fields
    return {"sensor": sensor, "ts": now_ts(60 - i / 1000), "fields": values}


def batch(
    readings: list[dict[str, Any]], *, org: str = UTILITY, gateway: str = "fleet", seq: int = 1
) -> dict[str, Any]:
    return {
        "v": 1,
        "org": org,
        "gateway": gateway,
        "kind": "fleet",
        "seq": seq,
        "sent_at": now_ts(),
        "readings": readings,
    }


def refused(answer: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {v["index"]: v for v in answer["verdicts"] if v["status"] == "refused"}
