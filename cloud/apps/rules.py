"""The rules service's wiring: which rules, alert store, notification channels, Grafana
annotations and worksite registry a `sitroom cloud rules` process gets, from its settings."""

from __future__ import annotations

from pathlib import Path
from typing import overload

from pydantic import ValidationError

from cloud.core.alerts import AlertSink
from cloud.core.geo import WorksiteLookup
from cloud.core.settings import CloudSettings
from cloud.core.transit import TransitNetwork
from cloud.dashboards.push import GrafanaAnnotator, connect
from cloud.io.db import make_engine
from cloud.io.mqtt import Outbound
from cloud.io.orgstore import OrgStore
from cloud.notify import NotificationsConfig, Notifier, build_channels
from cloud.notify.outbox import SqlOutbox
from cloud.rules.checkpoint import CheckpointStore
from cloud.rules.engine import DEFAULT_RULES, Engine, RulesFileError, load_rules, read_rules_file
from cloud.rules.service import Periodic, RulesService
from cloud.rules.store import AlertStore
from cloud.transit.intermodality import IntermodalSnapshots
from cloud.transit.lookup import open_network
from cloud.worksites.lookup import open_registry_lookup, read_registry_lookup
from cloud.worksites.snapshot import WorksiteSnapshots
from cloud.worksites.store import WorksiteStore


class RulesSetupError(ValueError):
    """The rules file or its notifications cannot be used; the message names file and field."""


def rules_path(settings: CloudSettings, rules_file: Path | None = None) -> Path:
    return rules_file or (Path(settings.rules_file) if settings.rules_file else DEFAULT_RULES)


@overload
def notifier_for(
    path: Path, settings: CloudSettings, *, outbox_db: str | None = None, outbound: Outbound | None = None
) -> Notifier: ...


@overload
def notifier_for(
    path: Path,
    settings: CloudSettings,
    *,
    only_if_routed: bool,
    outbox_db: str | None = None,
    outbound: Outbound | None = None,
) -> Notifier | None: ...


def notifier_for(
    path: Path,
    settings: CloudSettings,
    *,
    only_if_routed: bool = False,
    outbox_db: str | None = None,
    outbound: Outbound | None = None,
) -> Notifier | None:
    """The notification channels and routes of a rules file (its `notifications:` section);
    with `only_if_routed`, None when it routes nothing. With `outbox_db` (the alert store's
    database), pending deliveries are kept there and outlive a crash; else in memory."""
    raw = read_rules_file(path)
    config = NotificationsConfig.model_validate(raw.notifications or {})
    if only_if_routed and not config.routes:
        return None
    outbox = SqlOutbox(make_engine(outbox_db)) if outbox_db else None
    return Notifier(
        config,
        build_channels(config, settings.broker, outbound),
        outbox=outbox,
        owner=f"rules-{settings.instance}",
    )


def grafana_annotator(settings: CloudSettings) -> AlertSink | None:
    if not settings.grafana_url:
        return None
    return GrafanaAnnotator(
        connect(settings.grafana_url, token=settings.grafana_token),
        dashboard_uid=settings.grafana_dashboard_uid,
    )


def transit_network(settings: CloudSettings) -> TransitNetwork | None:
    """The bus network of `SITROOM_TRANSIT_DB` (read only: the importer owns its schema)."""
    return open_network(settings.transit_db) if settings.transit_db else None


def worksite_snapshots(settings: CloudSettings, transit: TransitNetwork | None = None) -> list[Periodic]:
    """The registry's state (and each worksite's bus routes), and the park-and-ride picture;
    none in the instances of a sharded service that leave them to another
    (`worksite_snapshot_s` 0)."""
    if settings.worksite_snapshot_s == 0:
        return []
    park_and_ride: list[Periodic] = [IntermodalSnapshots(transit)] if transit is not None else []
    if not settings.worksites_db:
        return park_and_ride
    # Read only: the API owns the registry's schema and creates it (no migration from here).
    registry = WorksiteStore(make_engine(settings.worksites_db), areas=None)
    snapshots = WorksiteSnapshots(registry, interval_s=settings.worksite_snapshot_s, transit=transit)
    return [snapshots, *park_and_ride]


def shard(settings: CloudSettings) -> CloudSettings:
    """The settings of one instance of a rules service sharded by area: `area_filter` becomes
    the list of organisations whose home area it names (the organisation registry of
    `worksites_db`), so that each organisation's gateways are judged by exactly one instance."""
    if settings.area_filter is None:
        return settings
    if not settings.worksites_db:
        raise RulesSetupError(
            f"SITROOM_AREA_FILTER={settings.area_filter} needs SITROOM_WORKSITES_DB: the organisation "
            "registry says which organisations have their home in which area"
        )
    registry = OrgStore(make_engine(settings.worksites_db))
    try:
        orgs = registry.in_areas(settings.area_filter.split(","))
    finally:
        registry.close()
    if not orgs:
        raise RulesSetupError(
            f"SITROOM_AREA_FILTER={settings.area_filter}: no organisation of the registry has its home "
            "area there (`sitroom provision org add --area`)"
        )
    if settings.org_filter != "+":
        orgs = [o for o in orgs if o in settings.org_filters]
    return settings.model_copy(update={"org_filter": ",".join(orgs)})


def build_rules_service(
    settings: CloudSettings, *, rules_file: Path | None, alerts_db: str, reload: bool
) -> RulesService:
    settings = shard(settings)
    path = rules_path(settings, rules_file)
    transit = transit_network(settings)
    # A rules file that names no worksites (the default one) classifies impacts against the
    # service's own registry, when it has one.
    worksites = f"registry:{settings.worksites_db}" if settings.worksites_db else None

    def open_registry(url: str) -> WorksiteLookup:
        # The service's own registry is read only (the API creates it, maybe later).
        return read_registry_lookup(url) if url == settings.worksites_db else open_registry_lookup(url)

    try:
        engine = Engine(load_rules(path, open_registry, worksites, transit=transit))
        # The channels publish on the service's own connection, attached once it exists.
        outbound = Outbound()
        notifier = notifier_for(path, settings, outbox_db=alerts_db, outbound=outbound)
    except (RulesFileError, ValidationError, ValueError) as exc:
        raise RulesSetupError(f"{path}: {exc}") from None
    store = AlertStore(alerts_db)
    service = RulesService(
        settings,
        engine,
        store=store,
        notifier=notifier,
        annotator=grafana_annotator(settings),
        rules_path=path if reload else None,
        periodic=worksite_snapshots(settings, transit),
        open_registry=open_registry,
        transit=transit,
        checkpoints=CheckpointStore(store.engine, settings.instance),
        checkpoint_s=settings.rules_checkpoint_s,
        checkpoint_messages=settings.rules_checkpoint_messages,
        default_worksites=worksites,
    )
    outbound.attach(service.conn)
    return service
