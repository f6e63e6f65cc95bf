"""The HTTP ways in to ingest that `sitroom cloud api` serves, built from the process's settings.

Wiring only: the push API (`cloud.ingest.push`) and the NGSI-LD notification receiver
(`cloud.exchange.receiver`) share one `DirectIngest` — ingest's verdict, the sensor directory,
InfluxDB and the dead letters, configured by the same `SITROOM_*` settings as `sitroom cloud
ingest` — and the worksite registry's organisation tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from cloud.api.app import WayIn
from cloud.exchange.receiver import NotificationReceiver
from cloud.exchange.receiver import router as notification_router
from cloud.influx.client import InfluxClient
from cloud.ingest.deadletter import DeadLetter
from cloud.ingest.direct import DirectIngest, owners_of
from cloud.ingest.ledger import BatchLedger
from cloud.ingest.policy import SensorChecks, TimeLimits
from cloud.ingest.push import PushOptions, PushService
from cloud.ingest.push import router as push_router
from cloud.provision.sensors import SensorDirectory
from cloud.settings import CloudSettings
from cloud.worksites.store import WorksiteStore


def direct_ingest(
    settings: CloudSettings,
    *,
    max_bytes: int,
    publish: Callable[[DeadLetter], None] | None = None,
) -> DirectIngest:
    influx = InfluxClient(
        settings.influx_url,
        settings.influx_db,
        username=settings.influx_username,
        password=settings.influx_password,
    )
    checks, owners = None, None
    if settings.sensor_directory:
        directory = SensorDirectory.from_config_dir(Path(settings.sensor_directory))
        checks = SensorChecks(directory.check)
        owners = owners_of((g.org, g.sensors) for g in directory.gateways.values())
    limits = TimeLimits(
        max_future=timedelta(seconds=settings.max_future_s), max_age=timedelta(days=settings.max_age_days)
    )
    return DirectIngest(
        influx,
        limits,
        max_bytes=max_bytes,
        sensor_check=checks,
        owners=owners,
        instance=f"http-{settings.instance}",
        publish=publish,
    )


def token_org(store: WorksiteStore) -> Callable[[str], str | None]:
    """The organisation of an API token of the worksite registry (`issue_token`), or None."""

    def org_of(token: str) -> str | None:
        caller = store.caller_for_token(token)
        return None if caller is None else caller.org

    return org_of


def ways_in(
    direct: DirectIngest, store: WorksiteStore, ledger: BatchLedger, push: PushOptions | None = None
) -> list[WayIn]:
    authenticate = token_org(store)
    return [
        WayIn(push_router, "push", PushService(direct, ledger, authenticate, push)),
        WayIn(notification_router, "ngsi_ld", NotificationReceiver(direct, ledger, authenticate)),
    ]


__all__ = ["direct_ingest", "token_org", "ways_in"]
