"""The rules service's wiring: which rules, alert store, notification channels, Grafana
annotations and worksite registry a `sitroom cloud rules` process gets, from its settings."""

from __future__ import annotations

from pathlib import Path
from typing import overload

from pydantic import ValidationError

from cloud.core.alerts import AlertSink
from cloud.core.settings import CloudSettings
from cloud.dashboards.push import GrafanaAnnotator, connect
from cloud.io.db import make_engine
from cloud.io.orgstore import OrgStore
from cloud.notify import NotificationsConfig, Notifier, build_channels
from cloud.rules.engine import DEFAULT_RULES, Engine, RulesFileError, load_rules, read_rules_file
from cloud.rules.service import Periodic, RulesService
from cloud.rules.store import AlertStore
from cloud.worksites.lookup import open_registry_lookup
from cloud.worksites.snapshot import WorksiteSnapshots
from cloud.worksites.store import WorksiteStore


class RulesSetupError(ValueError):
    """The rules file or its notifications cannot be used; the message names file and field."""


def rules_path(settings: CloudSettings, rules_file: Path | None = None) -> Path:
    return rules_file or (Path(settings.rules_file) if settings.rules_file else DEFAULT_RULES)


@overload
def notifier_for(path: Path, settings: CloudSettings) -> Notifier: ...


@overload
def notifier_for(path: Path, settings: CloudSettings, *, only_if_routed: bool) -> Notifier | None: ...


def notifier_for(path: Path, settings: CloudSettings, *, only_if_routed: bool = False) -> Notifier | None:
    """The notification channels and routes of a rules file (its `notifications:` section);
    with `only_if_routed`, None when it routes nothing."""
    raw = read_rules_file(path)
    config = NotificationsConfig.model_validate(raw.notifications or {})
    if only_if_routed and not config.routes:
        return None
    return Notifier(config, build_channels(config, settings.broker))


def grafana_annotator(settings: CloudSettings) -> AlertSink | None:
    if not settings.grafana_url:
        return None
    return GrafanaAnnotator(
        connect(settings.grafana_url, token=settings.grafana_token),
        dashboard_uid=settings.grafana_dashboard_uid,
    )


def worksite_snapshots(settings: CloudSettings) -> list[Periodic]:
    if not settings.worksites_db or settings.worksite_snapshot_s == 0:
        return []
    # Read only: the API owns the registry's schema and creates it (no migration from here).
    registry = WorksiteStore(make_engine(settings.worksites_db), areas=None)
    return [WorksiteSnapshots(registry, interval_s=settings.worksite_snapshot_s)]


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
    try:
        engine = Engine(load_rules(path, open_registry_lookup))
        notifier = notifier_for(path, settings)
    except (RulesFileError, ValidationError, ValueError) as exc:
        raise RulesSetupError(f"{path}: {exc}") from None
    return RulesService(
        settings,
        engine,
        store=AlertStore(alerts_db),
        notifier=notifier,
        annotator=grafana_annotator(settings),
        rules_path=path if reload else None,
        periodic=worksite_snapshots(settings),
        open_registry=open_registry_lookup,
    )
