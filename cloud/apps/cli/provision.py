"""`sitroom provision ...`: the CA, identities, and the broker files generated from them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import httpx
from pydantic import ValidationError

from cloud.core.orgs import Organisation, Role
from cloud.core.settings import default_db_url
from cloud.io.db import DatabaseURLError
from cloud.io.orgstore import OrgStore
from cloud.provision.broker import BrokerFiles, generate, paths, running_pid, unreachable_ancestor
from cloud.provision.ca import CAError, CertificateAuthority
from cloud.provision.csv_onboarding import CsvError, onboard
from cloud.provision.envfile import fill
from cloud.provision.identities import Outcome, add_gateway, add_service, add_utility
from cloud.provision.influx_users import InfluxAuthError, InfluxUser, ensure_users
from cloud.provision.plan import PlanError, PlanInflux, apply_identities, apply_influx, export, load_plan
from cloud.provision.registry import AuthMethod, BrokerSettings, IdentityRegistry, RegistryError, ServiceRole
from cloud.provision.specs import SpecError, load_base_config, parse_sensor
from edge.contract.areas import AREAS_ENV, Areas, AreasFileError, load_areas

DEFAULT_DIR = Path(".sitroom/provision")
AUTH_CHOICE = click.Choice([a.value for a in AuthMethod])

_areas_option = click.option(
    "--areas",
    "areas_file",
    envvar=AREAS_ENV,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The deployment's areas file: where gateways may stand (default: Prato alone).",
)


def _load_areas(path: Path | None) -> Areas:
    try:
        return load_areas(path)
    except AreasFileError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
@click.option(
    "--dir",
    "folder",
    default=DEFAULT_DIR,
    show_default=True,
    envvar="SITROOM_PROVISION_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="The provisioning folder: registry, CA, secrets, broker files.",
)
@click.pass_context
def group(ctx: click.Context, folder: Path) -> None:
    """Onboard gateways, utilities and services; generate the broker's security files."""
    ctx.obj = IdentityRegistry(folder)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except (RegistryError, CAError, CsvError, SpecError, PlanError) as exc:
        raise click.ClickException(str(exc)) from None


def _report_broker(files: BrokerFiles, reg: IdentityRegistry) -> None:
    if not files.changed:
        return
    click.echo(f"broker files updated in {reg.mosquitto_dir}: {', '.join(p.name for p in files.changed)}")
    if files.reloaded is not None:
        click.echo(f"mosquitto (pid {files.reloaded}) reloaded its password and ACL files")
    if files.needs_restart and running_pid(reg) is not None:
        click.echo("listener or TLS files changed: restart mosquitto to apply them")


def _auth_warning(reg: IdentityRegistry, outcome: Outcome) -> str | None:
    """Why an identity's auth method cannot work with the broker as configured, if it cannot."""
    s = reg.data.broker
    auth = outcome.identity.auth
    if s is None:
        return None
    if auth is AuthMethod.CERT and (s.tls_port is None or s.client_certs != "required"):
        fix = "sitroom provision broker --client-certs required"
        return f"the broker does not ask for its certificate: run `{fix}`"
    if auth is AuthMethod.PASSWORD and s.port is None and s.client_certs == "required":
        return "the broker has no password listener (TLS asks for certificates): use --auth cert or both"
    return None


def _report(outcome: Outcome, show_secret: bool, reg: IdentityRegistry | None = None) -> None:
    i = outcome.identity
    what = (
        "added"
        if outcome.created
        else ("updated: " + ", ".join(outcome.changed) if outcome.changed else "unchanged")
    )
    click.echo(f"{i.role.value} {i.username}: {what}")
    if outcome.config_path is not None:
        click.echo(f"  gateway config   {outcome.config_path}")
    if outcome.credentials_path is not None:
        click.echo(f"  credentials      {outcome.credentials_path}  (mode 0600)")
    if show_secret and outcome.password is not None:
        click.echo(f"  password         {outcome.password}")
    warning = _auth_warning(reg, outcome) if reg is not None else None
    if warning is not None:
        click.echo(f"warning: {i.username}: {warning}", err=True)


def _change(
    reg: IdentityRegistry, action: Callable[[IdentityRegistry], None], *, reload: bool = True
) -> BrokerFiles:
    """Apply `action` to the registry under its lock, then regenerate (and reload) the broker files."""
    with _errors(), reg.transaction():
        action(reg)
        return generate(reg, reload=reload)


# --- CA -------------------------------------------------------------------------------------


@group.group("ca")
def ca_group() -> None:
    """The private certificate authority."""


@ca_group.command("init")
@click.option("--cn", default="Situation Room private CA", show_default=True, help="The CA's common name.")
@click.pass_obj
def ca_init(reg: IdentityRegistry, cn: str) -> None:
    """Create the CA (once; running it again changes nothing)."""

    def act(r: IdentityRegistry) -> None:
        ca = CertificateAuthority(r.ca_dir)
        created = ca.init(cn)
        click.echo(f"CA {'created' if created else 'already present'}: {ca.cert_path}")

    _report_broker(_change(reg, act), reg)


# --- broker ---------------------------------------------------------------------------------


@group.command("broker")
@click.option("--port", type=click.IntRange(1, 65535), help="Plain MQTT listener port (password auth).")
@click.option("--tls-port", type=click.IntRange(1, 65535), help="MQTT over TLS listener port.")
@click.option("--no-plain", is_flag=True, help="No plain listener: TLS only.")
@click.option("--no-tls", is_flag=True, help="No TLS listener: plain MQTT only (one host, private network).")
@click.option("--bind", "bind_address", help="Address the listeners bind (default 127.0.0.1).")
@click.option("--server-name", "server_names", multiple=True, help="Host name or IP clients dial (repeat).")
@click.option(
    "--client-certs",
    type=click.Choice(["off", "required"]),
    help="required: the TLS listener accepts only client certificates from our CA (mutual TLS).",
)
@click.option("--user", help="The user mosquitto runs as (default: whoever runs mosquitto -c).")
@click.option(
    "--broker-dir",
    help="Where the broker reads a copy of DIR/mosquitto (a container's mount); written into its config.",
)
@click.option("--data-dir", help="The broker's persistence folder, as the broker sees it.")
@click.option("--max-queued-messages", type=click.IntRange(min=1))
@click.option("--no-reload", is_flag=True, help="Do not signal a running broker.")
@click.pass_obj
def broker_command(
    reg: IdentityRegistry,
    port: int | None,
    tls_port: int | None,
    no_plain: bool,
    no_tls: bool,
    bind_address: str | None,
    server_names: tuple[str, ...],
    client_certs: str | None,
    user: str | None,
    broker_dir: str | None,
    data_dir: str | None,
    max_queued_messages: int | None,
    no_reload: bool,
) -> None:
    """Write DIR/mosquitto/mosquitto.conf and its files; settings given once are kept."""
    if no_plain and no_tls:
        raise click.UsageError("--no-plain and --no-tls together leave the broker no listener")
    changes: dict[str, Any] = {
        "port": port,
        "tls_port": tls_port,
        "bind_address": bind_address,
        "client_certs": client_certs,
        "user": user,
        "broker_dir": broker_dir,
        "data_dir": data_dir,
        "max_queued_messages": max_queued_messages,
    }
    if no_plain:
        changes["port"] = _NONE
    if no_tls:
        changes["tls_port"] = _NONE
    if server_names:
        changes["server_names"] = list(server_names)
    _report_broker(_change(reg, lambda r: set_broker(r, changes), reload=not no_reload), reg)
    _describe_broker(reg)


_NONE = object()  # "set this broker setting to None", as opposed to "leave it as it is"


def set_broker(reg: IdentityRegistry, changes: dict[str, Any]) -> None:
    """Merge `changes` (None: keep the value; `_NONE`: clear it) into the broker settings."""
    new: dict[str, Any] = (reg.data.broker or BrokerSettings()).model_dump()
    for key, value in changes.items():
        if value is _NONE:
            new[key] = None
        elif value is not None:
            new[key] = value
    if new["tls_port"] is not None and not CertificateAuthority(reg.ca_dir).exists:
        raise RegistryError("a TLS listener needs the CA: run `sitroom provision ca init` first", "broker")
    if new["port"] is None and new["tls_port"] is None:
        raise RegistryError("the broker needs a listener: a plain port, a TLS port or both", "broker")
    try:
        reg.data.broker = BrokerSettings.model_validate(new)
    except ValidationError as exc:
        raise RegistryError(f"broker settings: {exc}", "broker") from None


def _describe_broker(reg: IdentityRegistry) -> None:
    s = reg.data.broker
    assert s is not None
    conf = paths(reg)["conf"]
    click.echo(f"broker config {conf}")
    if s.port is not None:
        click.echo(f"  mqtt://{s.bind_address}:{s.port}   (username and password)")
    if s.tls_port is not None:
        how = "client certificate from our CA" if s.client_certs == "required" else "username and password"
        click.echo(f"  mqtts://{s.bind_address}:{s.tls_port}  ({how})")
    blocked = unreachable_ancestor(reg)
    if blocked is not None:
        click.echo(
            f"warning: user {s.user} cannot traverse {blocked} (mode {blocked.stat().st_mode & 0o777:o}):"
            f" mosquitto would not reach {reg.mosquitto_dir}; move DIR or `chmod o+x {blocked}`",
            err=True,
        )
    if s.broker_dir is not None:
        click.echo(f"the broker reads a copy in {s.broker_dir}: mosquitto -c {s.broker_dir}/mosquitto.conf")
    else:
        click.echo(f"start it with: mosquitto -c {conf}")


# --- identities ----------------------------------------------------------------------------


def _secret_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--show-secret", is_flag=True, help="Print the password (it is in credentials.json).")(f)
    f = click.option("--rotate", is_flag=True, help="Issue new secrets; the old ones stop working.")(f)
    f = click.option("--broker-url", help="The URL this identity dials (default: from `provision broker`).")(
        f
    )
    return click.option("--auth", type=AUTH_CHOICE, default="password", show_default=True)(f)


@group.group("gateway")
def gateway_group() -> None:
    """Street gateways: each writes only its own sr/v1/{org}/{gateway}/... topics."""


@gateway_group.command("add")
@click.option("--id", "gateway", required=True, help="Gateway id, e.g. gw-mercatale.")
@click.option("--org", required=True, help="Owning organisation, e.g. comune-prato.")
@click.option("--name", default="", help="Human name of the gateway.")
@click.option(
    "--from",
    "base_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A gateway config draft (sensors, batching) to start from.",
)
@click.option(
    "--sensor",
    "sensor_specs",
    multiple=True,
    help="A sensor as key=value pairs: driver=sim_parking,id=p-1,place=mercatale (repeat).",
)
@click.option("--lat", type=click.FloatRange(-90, 90))
@click.option("--lon", type=click.FloatRange(-180, 180))
@click.option("--location", "location_text", default="", help="Mounting notes, e.g. 'lamp post, north side'.")
@click.option(
    "--install-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the secrets will sit on the gateway (paths written into its config).",
)
@_secret_options
@_areas_option
@click.pass_obj
def gateway_add(
    reg: IdentityRegistry,
    gateway: str,
    org: str,
    name: str,
    base_path: Path | None,
    sensor_specs: tuple[str, ...],
    lat: float | None,
    lon: float | None,
    location_text: str,
    install_dir: Path | None,
    auth: str,
    broker_url: str | None,
    rotate: bool,
    show_secret: bool,
    areas_file: Path | None,
) -> None:
    """Register a gateway: its secrets, its config, and its lines in the broker's files."""
    if (lat is None) != (lon is None):
        raise click.UsageError("give both --lat and --lon, or neither")
    with _errors():
        base = load_base_config(base_path) if base_path else None
        sensors = [parse_sensor(s) for s in sensor_specs]
    location: dict[str, Any] | None = None
    if lat is not None:
        location = {"lat": lat, "lon": lon} | ({"description": location_text} if location_text else {})
    outcomes: list[Outcome] = []

    def act(r: IdentityRegistry) -> None:
        outcomes.append(
            add_gateway(
                r,
                gateway=gateway,
                org=org,
                name=name,
                auth=AuthMethod(auth),
                base=base,
                sensors=sensors,
                location=location,
                broker_url=broker_url,
                install_dir=install_dir,
                rotate=rotate,
                areas=areas,
            )
        )

    areas = _load_areas(areas_file)
    files = _change(reg, act)
    _report(outcomes[0], show_secret, reg)
    _report_broker(files, reg)


@gateway_group.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--broker-url", help="The URL the gateways dial (default: from `provision broker`).")
@_areas_option
@click.pass_obj
def gateway_import(
    reg: IdentityRegistry, csv_file: Path, broker_url: str | None, areas_file: Path | None
) -> None:
    """Onboard every gateway of a CSV (id,org,name,lat,lon,location,from,sensors,auth); all or none."""
    outcomes: list[Outcome] = []
    areas = _load_areas(areas_file)

    def act(r: IdentityRegistry) -> None:
        outcomes.extend(onboard(r, csv_file, broker_url=broker_url, areas=areas))

    files = _change(reg, act)
    for o in outcomes:
        _report(o, show_secret=False, reg=reg)
    _report_broker(files, reg)
    added = sum(o.created for o in outcomes)
    changed = sum(bool(o.changed) and not o.created for o in outcomes)
    same = len(outcomes) - added - changed
    click.echo(f"{len(outcomes)} gateways: {added} added, {changed} updated, {same} unchanged")


@group.group("org")
def org_group() -> None:
    """Utilities feeding fleet telemetry: each writes only sr/v1/{org}/fleet/..."""


@org_group.command("add")
@click.option("--id", "org", required=True, help="Org id, e.g. alia.")
@click.option("--name", default="", help="Human name, e.g. 'Alia Servizi Ambientali'.")
@click.option(
    "--role", type=click.Choice([r.value for r in Role]), default=Role.UTILITY.value, show_default=True
)
@click.option(
    "--db",
    envvar="SITROOM_WORKSITES_DB",
    help="The organisation registry (the API's --db): sqlite:///PATH or postgresql://user@host/db.",
)
@click.option("--area", "area_ids", multiple=True, help="An area it belongs to, home area first (repeat).")
@_areas_option
@_secret_options
@click.pass_obj
def org_add(
    reg: IdentityRegistry,
    org: str,
    name: str,
    role: str,
    db: str | None,
    area_ids: tuple[str, ...],
    areas_file: Path | None,
    auth: str,
    broker_url: str | None,
    rotate: bool,
    show_secret: bool,
) -> None:
    """Register an organisation: in the organisation registry that the worksite API and the
    console read (with the areas it belongs to), and on the broker (its credentials and its
    fleet topic prefix)."""
    configured = _load_areas(areas_file).ids
    unknown = [a for a in area_ids if a not in configured]
    if unknown:
        raise click.UsageError(
            f"--area: {', '.join(unknown)} not configured; configured: {', '.join(configured)}"
        )
    try:
        organisation = Organisation(id=org, name=name or org, role=Role(role), areas=area_ids)
        db = db or default_db_url()
        orgs = OrgStore.open(db)
    except (ValidationError, DatabaseURLError) as exc:
        raise click.ClickException(str(exc)) from None
    try:
        is_new = orgs.add(organisation)
    finally:
        orgs.close()
    click.echo(
        f"organisation {org} ({role}) {'registered' if is_new else 'updated'} in {db or default_db_url()}"
    )
    outcomes: list[Outcome] = []

    def act(r: IdentityRegistry) -> None:
        outcomes.append(
            add_utility(r, org=org, name=name, auth=AuthMethod(auth), rotate=rotate, broker_url=broker_url)
        )

    files = _change(reg, act)
    _report(outcomes[0], show_secret, reg)
    click.echo(f"  topics           sr/v1/{org}/fleet/data/fleet (write), sr/v1/alerts/{org}/# (read)")
    _report_broker(files, reg)


@group.group("service")
def service_group() -> None:
    """The cloud's own services (ingest, rules, config publisher, monitoring)."""


@service_group.command("add")
@click.option("--id", "service", required=True, help="Service id, e.g. ingest (a feed reader: its source).")
@click.option("--role", type=click.Choice([r.value for r in ServiceRole]), help="Default: the id, if a role.")
@click.option("--org", help="A feed reader's organisation (role feed), e.g. autolinee-toscane.")
@_secret_options
@click.pass_obj
def service_add(
    reg: IdentityRegistry,
    service: str,
    role: str | None,
    org: str | None,
    auth: str,
    broker_url: str | None,
    rotate: bool,
    show_secret: bool,
) -> None:
    """Register a cloud service with the rights of its role."""
    if role is None and service not in {r.value for r in ServiceRole}:
        raise click.UsageError(f"--role is needed for a service called {service!r}")
    outcomes: list[Outcome] = []

    def act(r: IdentityRegistry) -> None:
        outcomes.append(
            add_service(
                r,
                service=service,
                role=ServiceRole(role or service),
                auth=AuthMethod(auth),
                rotate=rotate,
                broker_url=broker_url,
                org=org,
            )
        )

    files = _change(reg, act)
    _report(outcomes[0], show_secret, reg)
    if org is not None:
        click.echo(
            f"  topics           sr/v1/{org}/{service}/data/+, status, health, "
            f"sr/v1/deadletter/{org}/{service}, sr/v1/alerts/{org}/# (write)"
        )
    _report_broker(files, reg)


# --- revoke, list, show, reload ---------------------------------------------------------------


@group.command("revoke")
@click.argument("ident")
@click.pass_obj
def revoke(reg: IdentityRegistry, ident: str) -> None:
    """Revoke an identity (gateway id, org id, service id or username); the broker reloads."""

    def act(r: IdentityRegistry) -> None:
        identity, changed = r.revoke(ident)
        click.echo(
            f"{identity.role.value} {identity.username}: {'revoked' if changed else 'already revoked'}"
        )

    _report_broker(_change(reg, act), reg)


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_command(reg: IdentityRegistry, as_json: bool) -> None:
    """Every identity, with its role, org, auth and state (never a secret)."""
    with _errors():
        reg.load()
    rows = [
        {
            "username": i.username,
            "role": i.role.value,
            "id": i.id,
            "org": i.org,
            "service_role": i.service_role.value if i.service_role else None,
            "auth": i.auth.value,
            "state": "revoked" if i.is_revoked else "active",
            "created_at": i.created_at.isoformat(),
            "revoked_at": i.revoked_at.isoformat() if i.revoked_at else None,
        }
        for i in reg.identities()
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"no identities in {reg.path}")
        return
    click.echo(f"{'USERNAME':<28} {'ROLE':<16} {'ORG':<20} {'AUTH':<9} STATE")
    for row in rows:
        role = f"{row['role']}:{row['service_role']}" if row["service_role"] else str(row["role"])
        org = row["org"] or "-"
        click.echo(f"{row['username']:<28} {role:<16} {org:<20} {row['auth']:<9} {row['state']}")


@group.command("show")
@click.argument("ident")
@click.option("--show-secret", is_flag=True, help="Print the password too.")
@click.pass_obj
def show(reg: IdentityRegistry, ident: str, show_secret: bool) -> None:
    """Where an identity's credentials are, and (if asked) its password."""
    with _errors():
        reg.load()
        identity = reg.find(ident)
    folder = reg.identity_dir(identity.username)
    creds = json.loads((folder / "credentials.json").read_text())
    if not show_secret and creds.get("password"):
        creds["password"] = "*** (--show-secret to print)"  # noqa: S105 (a mask, not a secret)
    click.echo(json.dumps({"state": "revoked" if identity.is_revoked else "active", **creds}, indent=2))


@group.command("reload")
@click.pass_obj
def reload_command(reg: IdentityRegistry) -> None:
    """Regenerate the broker files and make a running broker reread them (SIGHUP)."""
    _report_broker(_change(reg, lambda r: None), reg)
    pid = running_pid(reg)
    click.echo(
        f"mosquitto running on this config: pid {pid}" if pid else "no mosquitto running on this config"
    )


# --- a whole deployment from one file -------------------------------------------------------


@group.command("apply")
@click.argument("plan_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--root",
    default=Path("/"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Read and write the plan's absolute paths (from, exports) under this folder.",
)
@click.option(
    "--db",
    envvar="SITROOM_WORKSITES_DB",
    help="The organisation registry, for the plan's `influx` (each organisation's reader).",
)
# From the environment only (a password on the command line shows in `ps`); needed by `influx`.
@click.option("--influx-admin-password", envvar="SITROOM_INFLUX_ADMIN_PASSWORD", hidden=True)
@click.option("--influx-writer-password", envvar="SITROOM_INFLUX_WRITE_PASSWORD", hidden=True)
@click.pass_obj
def apply_command(
    reg: IdentityRegistry,
    plan_file: Path,
    root: Path,
    db: str | None,
    influx_admin_password: str | None,
    influx_writer_password: str | None,
) -> None:
    """Provision what PLAN_FILE lists (broker, identities, InfluxDB per the data policy) and
    export the files others mount.

    Idempotent: a second run changes nothing and keeps every secret. It never revokes an
    identity. The plan's `influx` needs SITROOM_INFLUX_ADMIN_PASSWORD and
    SITROOM_INFLUX_WRITE_PASSWORD in the environment.
    """
    with _errors():
        plan = load_plan(plan_file)
    outcomes: list[Outcome] = []

    def act(r: IdentityRegistry) -> None:
        outcomes.extend(apply_identities(r, plan, plan_dir=plan_file.parent, root=root))

    with _errors(), reg.transaction():
        act(reg)
        files = generate(reg)
        exports = [export(reg, spec, root) for spec in plan.exports]
    for o in outcomes:
        _report(o, show_secret=False, reg=reg)
    _report_broker(files, reg)
    for e in exports:
        what = ("updated: " + ", ".join(e.changed)) if e.changed else "unchanged"
        click.echo(f"export {e.to} ({e.what}): {what}")
    if plan.influx is not None:
        if not influx_admin_password or not influx_writer_password:
            raise click.ClickException(
                f"{plan_file}: influx needs SITROOM_INFLUX_ADMIN_PASSWORD and SITROOM_INFLUX_WRITE_PASSWORD"
            )
        passwords = (influx_admin_password, influx_writer_password)
        _apply_influx(reg, plan.influx, (plan_file, root, db), passwords)
    changed = sum(bool(o.created or o.changed) for o in outcomes) + sum(bool(e.changed) for e in exports)
    click.echo(
        f"{plan_file}: {len(outcomes)} identities, {len(exports)} exports"
        + (f", {changed} changed" if changed or files.changed else ", nothing changed")
    )


# --- InfluxDB users ---------------------------------------------------------------------------


def _apply_influx(
    reg: IdentityRegistry, spec: PlanInflux, where: tuple[Path, Path, str | None], passwords: tuple[str, str]
) -> None:
    plan_file, root, db = where
    try:
        with reg.transaction():
            done = apply_influx(
                reg,
                spec,
                plan_dir=plan_file.parent,
                root=root,
                admin_password=passwords[0],
                writer_password=passwords[1],
                registry_url=db,
            )
    except (PlanError, InfluxAuthError, httpx.HTTPError, DatabaseURLError) as exc:
        raise click.ClickException(str(exc)) from None
    for line in done:
        click.echo(f"influx: {line}")
    click.echo(f"influx {spec.url}: {len(done)} changes" if done else f"influx {spec.url}: nothing changed")


def _password_option(name: str, envvar: str, what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    # From the environment or a hidden prompt: a password on the command line shows in `ps`.
    return click.option(
        name,
        envvar=envvar,
        show_envvar=True,
        prompt=f"{what} password",
        hide_input=True,
        help=f"{what} password.",
    )


@group.command("influx-users")
@click.option("--url", default="http://127.0.0.1:8086", show_default=True, help="InfluxDB (auth enabled).")
@click.option("--database", default="sitroom", show_default=True)
@click.option("--admin-user", default="admin", show_default=True)
@click.option("--writer-user", default="sitroom-writer", show_default=True, help="WRITE only: ingest, rules.")
@click.option(
    "--reader-user", default="grafana-reader", show_default=True, help="READ only: Grafana, the API."
)
@_password_option("--admin-password", "SITROOM_INFLUX_ADMIN_PASSWORD", "InfluxDB admin")
@_password_option("--writer-password", "SITROOM_INFLUX_WRITE_PASSWORD", "Writer")
@_password_option("--reader-password", "SITROOM_INFLUX_READ_PASSWORD", "Reader")
def influx_users(
    url: str,
    database: str,
    admin_user: str,
    writer_user: str,
    reader_user: str,
    admin_password: str,
    writer_password: str,
    reader_password: str,
) -> None:
    """Create or converge InfluxDB's admin, write-only and read-only users (idempotent)."""
    try:
        done = ensure_users(
            url,
            database,
            admin=InfluxUser(admin_user, admin_password),
            writer=InfluxUser(writer_user, writer_password),
            reader=InfluxUser(reader_user, reader_password),
        )
    except (InfluxAuthError, httpx.HTTPError) as exc:
        raise click.ClickException(str(exc)) from None
    for line in done:
        click.echo(line)
    click.echo(
        f"{url} database {database}: admin {admin_user}, writer {writer_user}, reader {reader_user} ok"
    )


@group.command("compose-env")
@click.option(
    "--template",
    default=Path("deploy/compose.env.example"),
    show_default=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--out", default=Path(".env"), show_default=True, type=click.Path(dir_okay=False, path_type=Path)
)
def compose_env(template: Path, out: Path) -> None:
    """Write docker compose's .env (0600) with a random value for every secret not yet set."""
    drawn = fill(template, out)
    click.echo(f"{out}: " + (f"new random {', '.join(drawn)}" if drawn else "every secret already set"))
