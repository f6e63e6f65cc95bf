"""`sitroom worksites add|list|show|update|approve|import|export|conflicts|orgs|token|demo`.

The CLI works on the registry's database directly (`--db`, or `SITROOM_WORKSITES_DB`), acting
as one organisation (`--as`, default the municipality of the first configured area) with that
organisation's permissions; worksites must lie in the configured areas (`--areas`).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson
import yaml
from pydantic import ValidationError

from cloud.apps import demo as demo_wiring
from cloud.core.errors import NotFoundError, problems_from
from cloud.core.geo import BBox, ServiceAreas
from cloud.core.orgs import Caller, Organisation, Role
from cloud.core.settings import default_db_url
from cloud.io.db import DatabaseURLError
from cloud.worksites import conflicts, csv_import, wzdx
from cloud.worksites.alerts import publish_alerts
from cloud.worksites.geojson import feature_collection
from cloud.worksites.models import (
    InvalidWorksiteError,
    Status,
    WorksiteCreate,
    WorksiteFields,
    WorksiteImport,
)
from cloud.worksites.store import Query, StoreError, WorksiteStore
from edge.contract.areas import AreasFileError


def _open(db: str | None, areas: ServiceAreas) -> WorksiteStore:
    try:
        return WorksiteStore.open(db or default_db_url(), areas=areas)
    except DatabaseURLError as exc:
        raise click.ClickException(str(exc)) from None


class Ctx:
    def __init__(self, db: str | None, org: str | None, areas_file: str | None) -> None:
        self.db = db
        self.areas_file = areas_file
        self._org = org
        self._areas: ServiceAreas | None = None
        self._store: WorksiteStore | None = None

    @property
    def areas(self) -> ServiceAreas:
        if self._areas is None:
            try:
                self._areas = ServiceAreas.load(self.areas_file)
            except AreasFileError as exc:
                raise click.ClickException(str(exc)) from None
        return self._areas

    @property
    def org(self) -> str:
        return self._org or next(iter(self.areas)).municipality

    @property
    def store(self) -> WorksiteStore:
        if self._store is None:
            self._store = _open(self.db, self.areas)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def caller(self) -> Caller:
        try:
            org = self.store.orgs.organisation(self.org)
        except NotFoundError:
            raise click.ClickException(
                f"organisation {self.org!r} is not registered: add it with `sitroom worksites org-add` "
                "or load the demo with `sitroom worksites demo`"
            ) from None
        return Caller(org.id, org.role)


pass_ctx = click.make_pass_decorator(Ctx)


def _fail(exc: Exception) -> click.ClickException:
    if isinstance(exc, InvalidWorksiteError):
        lines = [
            f"  {p.field}: {p.message}" + (f" (got {p.value!r})" if p.value is not None else "")
            for p in exc.problems
        ]
        return click.ClickException("refused, nothing changed:\n" + "\n".join(lines))
    return click.ClickException(f"refused, nothing changed: {exc}")


def _read_json(path: str) -> Any:
    data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise click.ClickException(f"{path}: not valid JSON: {exc}") from None


def _echo_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


@click.group()
@click.option("--db", envvar="SITROOM_WORKSITES_DB", help="sqlite:///PATH or postgresql://user@host/db")
@click.option("--as", "org", help="Act as this organisation (default: the first area's municipality).")
@click.option(
    "--areas",
    "areas_file",
    envvar="SITROOM_AREAS",
    type=click.Path(exists=True, dir_okay=False),
    help="The areas file: where worksites may lie (default: Prato alone).",
)
@click.pass_context
def group(ctx: click.Context, db: str | None, org: str | None, areas_file: str | None) -> None:
    """Road worksites: plan, coordinate, publish."""
    ctx.obj = Ctx(db, org, areas_file)
    ctx.call_on_close(ctx.obj.close)


@group.command()
@click.argument("file", default="-")
@pass_ctx
def add(ctx: Ctx, file: str) -> None:
    """Add a worksite from a JSON file (or - for stdin); prints its id."""

    try:
        data = WorksiteCreate.model_validate(_read_json(file))
        created = ctx.store.create(ctx.caller(), data)
    except ValidationError as exc:
        raise _fail(InvalidWorksiteError(problems_from(exc))) from None
    except StoreError as exc:
        raise _fail(exc) from None
    click.echo(created.id)


@group.command("list")
@click.option("--status", "statuses", multiple=True, help="Repeatable: planned, active, ...")
@click.option("--owner", "owners", multiple=True)
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S%z"]))
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S%z"]))
@click.option("--bbox", help="min_lon,min_lat,max_lon,max_lat")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def list_(
    ctx: Ctx,
    statuses: tuple[str, ...],
    owners: tuple[str, ...],
    start: datetime | None,
    end: datetime | None,
    bbox: str | None,
    as_json: bool,
) -> None:
    """List worksites, filtered by status, owner, time window and bounding box."""

    try:
        query = Query(
            start=start.replace(tzinfo=start.tzinfo or UTC) if start else None,
            end=end.replace(tzinfo=end.tzinfo or UTC) if end else None,
            statuses=tuple(Status(s) for s in statuses),
            owners=owners,
            bbox=BBox.parse(bbox) if bbox else None,
            limit=10**9,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    sites = ctx.store.search(query)
    if as_json:
        _echo_json([w.model_dump(mode="json") for w in sites])
        return
    for w in sites:
        when = f"{w.start:%Y-%m-%d} → {w.end:%Y-%m-%d}"
        click.echo(f"{w.id:40} {w.status.value:10} {w.owner:16} {when}  {w.street}: {w.title}")
    click.echo(f"{len(sites)} worksite(s)")


@group.command()
@click.argument("worksite_id")
@click.option("--history", is_flag=True, help="Also print who changed what, when.")
@pass_ctx
def show(ctx: Ctx, worksite_id: str, history: bool) -> None:
    """Print one worksite as JSON."""

    try:
        out: dict[str, Any] = ctx.store.get(worksite_id).model_dump(mode="json")
        if history:
            out["history"] = [h.model_dump(mode="json") for h in ctx.store.history(worksite_id)]
    except NotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    _echo_json(out)


@group.command()
@click.argument("worksite_id")
@click.option("--set", "assignments", multiple=True, metavar="FIELD=VALUE", help="VALUE is JSON, or text.")
@click.option("--file", "file", help="A JSON object of fields to change.")
@pass_ctx
def update(ctx: Ctx, worksite_id: str, assignments: tuple[str, ...], file: str | None) -> None:
    """Change fields of a worksite (`--set status=active --set impact='{"lanes_closed": 1}'`)."""

    patch: dict[str, Any] = dict(_read_json(file)) if file else {}
    for item in assignments:
        name, sep, text = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected FIELD=VALUE: {item!r}", param_hint="--set")
        try:
            patch[name] = orjson.loads(text)
        except orjson.JSONDecodeError:
            patch[name] = text
    unknown = set(patch) - set(_writable_fields())
    if unknown:
        raise click.BadParameter(f"unknown field(s): {', '.join(sorted(unknown))}", param_hint="--set")
    try:
        updated = ctx.store.update(ctx.caller(), worksite_id, patch)
    except StoreError as exc:
        raise _fail(exc) from None
    click.echo(f"{updated.id} version {updated.version}")


def _writable_fields() -> list[str]:
    return list(WorksiteFields.model_fields)


@group.command()
@click.argument("worksite_id")
@click.option("--reject", is_flag=True)
@pass_ctx
def approve(ctx: Ctx, worksite_id: str, reject: bool) -> None:
    """Approve (or --reject) a worksite; municipality only."""

    try:
        ws = ctx.store.decide(ctx.caller(), worksite_id, approve=not reject)
    except StoreError as exc:
        raise _fail(exc) from None
    click.echo(f"{ws.id} {ws.approval.value}")


@group.command("import")
@click.argument("file")
@click.option("--format", "fmt", type=click.Choice(["wzdx", "csv"]), default="wzdx", show_default=True)
@click.option(
    "--mapping", type=click.Path(exists=True, dir_okay=False), help="CSV column mapping (JSON or YAML)."
)
@pass_ctx
def import_(ctx: Ctx, file: str, fmt: str, mapping: str | None) -> None:
    """Import a WZDx WorkZoneFeed, or a CSV with a column mapping; all or nothing."""

    caller = ctx.caller()
    try:
        if fmt == "wzdx":
            sites = wzdx.import_feed(_read_json(file), areas=ctx.store.areas)
            created, updated = ctx.store.import_many(caller, sites)
        else:
            if mapping is None:
                raise click.UsageError("--format csv needs --mapping FILE")
            try:
                cmap = csv_import.ColumnMapping.from_obj(yaml.safe_load(Path(mapping).read_text()))
            except (csv_import.MappingError, yaml.YAMLError) as exc:
                raise click.ClickException(f"{mapping}: {exc}") from None
            text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8-sig")
            items = csv_import.read_csv(text, cmap)
            created, updated = _import_rows(ctx, caller, items)
    except StoreError as exc:
        raise _fail(exc) from None
    click.echo(f"imported: {created} created, {updated} updated")


def _import_rows(ctx: Ctx, caller: Any, items: list[WorksiteCreate]) -> tuple[int, int]:
    """CSV rows as worksites, with the API's rules, in one transaction (each row validated
    first, so none is half done); a row without an id gets one."""
    now = datetime.now(UTC)
    sites = [
        WorksiteImport.model_validate(
            {**item.model_dump(), "id": item.id or f"csv-{now:%Y%m%d%H%M%S}-{i:04d}"}
        )
        for i, item in enumerate(items)
    ]
    return ctx.store.import_many(caller, sites)


@group.command()
@click.option("--format", "fmt", type=click.Choice(["wzdx", "geojson"]), default="wzdx", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Default: stdout")
@click.option("--all", "everything", is_flag=True, help="Include completed and cancelled worksites.")
@pass_ctx
def export(ctx: Ctx, fmt: str, output: Path | None, everything: bool) -> None:
    """Export the registry as a WZDx 4.2 WorkZoneFeed or a GeoJSON FeatureCollection."""

    sites = ctx.store.search(_all_query())
    if not everything:
        sites = [w for w in sites if w.status not in (Status.COMPLETED, Status.CANCELLED)]
    body = (
        wzdx.dumps(wzdx.export_feed(sites, ctx.store.organisations(), publisher=ctx.store.publisher()))
        if fmt == "wzdx"
        else orjson.dumps(feature_collection(sites), option=orjson.OPT_INDENT_2)
    )
    if output is None:
        click.echo(body.decode())
    else:
        output.write_bytes(body + b"\n")
        click.echo(f"{len(sites)} worksite(s) written to {output}", err=True)


def _all_query() -> Any:
    return Query(limit=10**9)


@group.command("conflicts")
@click.option(
    "--buffer-m", default=25.0, show_default=True, help="Same street segment: geometries this close."
)
@click.option("--synergy-days", default=90.0, show_default=True, help="Flag windows this close as synergies.")
@click.option(
    "--redig-days", default=365.0, show_default=True, help="Flag digs this soon after a completion."
)
@click.option("--json", "as_json", is_flag=True)
@click.option("--publish", "mqtt_url", help="Also publish them as alerts to this broker (mqtt://host:port).")
@pass_ctx
def conflicts_(
    ctx: Ctx, buffer_m: float, synergy_days: float, redig_days: float, as_json: bool, mqtt_url: str | None
) -> None:
    """Conflicts, synergies and redigs among the registry's worksites."""

    settings = conflicts.CoordinationSettings(buffer_m, synergy_days, redig_days)
    found = conflicts.detect(ctx.store.search(_all_query()), settings, projection=ctx.store.projection)
    if mqtt_url:
        sent = publish_alerts(mqtt_url, conflicts.to_alerts(found, datetime.now(UTC)))
        click.echo(f"published {sent} alert(s) to {mqtt_url}", err=True)
    if as_json:
        _echo_json([c.as_dict() for c in found])
        return
    for c in found:
        click.echo(f"{c.finding.value:9} {c.first} ↔ {c.second}: {c.message}")
    click.echo(f"{len(found)} finding(s)")


@group.command()
@pass_ctx
def orgs(ctx: Ctx) -> None:
    """List the organisations."""
    for o in ctx.store.organisations():
        click.echo(f"{o.id:20} {o.role.value:13} {o.name}" + (f"  [{', '.join(o.areas)}]" if o.areas else ""))


@group.command("org-add")
@click.argument("org_id")
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(["municipality", "utility"]), default="utility", show_default=True)
@click.option("--area", "area_ids", multiple=True, help="An area it belongs to, home area first (repeat).")
@pass_ctx
def org_add(ctx: Ctx, org_id: str, name: str, role: str, area_ids: tuple[str, ...]) -> None:
    """Register (or rename) an organisation."""

    unknown = [a for a in area_ids if a not in ctx.areas.ids]
    if unknown:
        raise click.ClickException(
            f"--area: {', '.join(unknown)} not configured; configured: {', '.join(ctx.areas.ids)}"
        )
    try:
        ctx.store.orgs.add(Organisation(id=org_id, name=name, role=Role(role), areas=area_ids))
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(org_id)


@group.command()
@click.argument("org_id")
@click.option("--label", default="api", show_default=True)
@pass_ctx
def token(ctx: Ctx, org_id: str, label: str) -> None:
    """Issue an API token for an organisation. It is shown once; only its hash is stored."""

    try:
        click.echo(ctx.store.orgs.issue_token(org_id, label))
    except NotFoundError as exc:
        raise click.ClickException(str(exc)) from None


@group.command()
@pass_ctx
def demo(ctx: Ctx) -> None:
    """Load the Prato demo organisations and worksites (dates relative to today)."""

    click.echo(f"{demo_wiring.seed_registry(ctx.store)} demo worksite(s) added")
