"""The console's wiring: its stores, live sources, the organisation registry and where its
posts' notifications go, for `sitroom cloud api --console DIR` (and the demo)."""

from __future__ import annotations

from pathlib import Path

from cloud.apps.rules import notifier_for, rules_path
from cloud.console.app import Console, PostNotifier
from cloud.console.live import Sources
from cloud.console.notify import notifier_hook
from cloud.core.alerts import AlertBook
from cloud.core.geo import FixedSites, MergedSites, ServiceAreas, SiteSource
from cloud.core.orgs import OrgDirectory
from cloud.core.settings import CloudSettings
from cloud.core.transit import TransitNetwork
from cloud.core.worksites import WorksiteBook
from cloud.io.influx.client import InfluxClient
from cloud.io.influx.policy import DataPolicy
from cloud.io.influx.sites import InfluxSites
from cloud.io.mqtt import Outbound

DEFAULT_MAX_UPLOAD_BYTES = 8 * 1024 * 1024


def upload_limit(max_body_bytes: int) -> int:
    """The upload limit stays under the API's body limit, or the middleware answers first."""
    return max(1024, min(DEFAULT_MAX_UPLOAD_BYTES, max_body_bytes - 65536))


def known_sites(influx: InfluxClient | None) -> SiteSource:
    """The installation file's sites, then (with an InfluxDB to read) the places partners gave."""
    fixed = FixedSites.from_file()
    return fixed if influx is None else MergedSites(fixed, InfluxSites(influx))


def open_console(
    data_dir: Path,
    *,
    worksites: WorksiteBook | None,
    alerts: AlertBook | None,
    influx: InfluxClient | None,
    orgs: OrgDirectory,
    refresh_s: float = 2.0,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    notify_posts: PostNotifier | None = None,
    areas: ServiceAreas | None = None,
    policy: DataPolicy | None = None,
    cookie_secure: bool = False,
    transit: TransitNetwork | None = None,
) -> Console:
    """The console on its folder (posts, uploads, audit), not started; its map shows `areas`
    (None: the default areas, Prato); with a data `policy`, its InfluxDB user reads every
    organisation's database and each operator sees its own organisation's private data.
    `cookie_secure` marks the session cookie `Secure`: set it when browsers reach the console
    over HTTPS (a proxy)."""
    console = Console.open(
        data_dir,
        Sources(
            worksites=worksites,
            alerts=alerts,
            influx=influx,
            policy=policy,
            orgs=orgs,
            sites=known_sites(influx),
            transit=transit,
        ),
        refresh_s=refresh_s,
        max_upload_bytes=max_upload_bytes,
        orgs=orgs,
        areas=areas,
        cookie_secure=cookie_secure,
    )
    if notify_posts is not None:
        console.notify_posts = notify_posts
    return console


def post_notifier(
    settings: CloudSettings, console_url: str | None = None, outbound: Outbound | None = None
) -> PostNotifier | None:
    """Mentions of organisations that are not watching go out as the rules engine's alerts do:
    through the rules file's notification routes (None when it routes nothing)."""
    notifier = notifier_for(rules_path(settings), settings, only_if_routed=True, outbound=outbound)
    return notifier_hook(notifier, console_url) if notifier is not None else None


def influx_client(settings: CloudSettings) -> InfluxClient:
    return InfluxClient(
        settings.influx_url,
        settings.influx_db,
        username=settings.influx_username,
        password=settings.influx_password,
    )
