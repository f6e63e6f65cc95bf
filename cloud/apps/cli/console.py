"""`sitroom console operator-add`: the console's log-ins."""

from __future__ import annotations

from pathlib import Path

import click

from cloud.console.auth import ConsoleRole
from cloud.console.store import ConsoleStore
from cloud.core.errors import NotFoundError
from cloud.core.settings import default_db_url
from cloud.io.db import DatabaseURLError
from cloud.io.orgstore import OrgStore

DEFAULT_DIR = Path(".sitroom/console")


@click.group()
def group() -> None:
    """The operator console's accounts (served by `sitroom cloud api --console DIR`)."""


@group.command("operator-add")
@click.argument("username")
@click.option("--org", required=True, help="Organisation id, e.g. comune-prato, publiacqua.")
@click.option("--role", type=click.Choice([r.value for r in ConsoleRole]), required=True)
@click.option("--name", "display_name", default="", help="Name shown beside posts.")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--dir", "data_dir", type=click.Path(path_type=Path), default=DEFAULT_DIR, show_default=True)
@click.option(
    "--db",
    envvar="SITROOM_WORKSITES_DB",
    help="The organisation registry (the API's --db): sqlite:///PATH or postgresql://user@host/db.",
)
def operator_add(
    username: str, org: str, role: str, display_name: str, password: str, data_dir: Path, db: str | None
) -> None:
    """Create an operator, or change one's organisation, role and password. The organisation
    must be registered (`sitroom provision org add`)."""
    if len(password) < 8:
        raise click.BadParameter("use at least 8 characters", param_hint="--password")
    try:
        orgs = OrgStore.open(db or default_db_url())
    except DatabaseURLError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        orgs.organisation(org)
    except NotFoundError:
        known = ", ".join(o.id for o in orgs.organisations()) or "none yet"
        raise click.BadParameter(
            f"{org!r} is not a registered organisation (known: {known}); add it with "
            "`sitroom provision org add --id ...`",
            param_hint="--org",
        ) from None
    finally:
        orgs.close()
    data_dir.mkdir(parents=True, exist_ok=True)
    store = ConsoleStore(f"sqlite:///{data_dir / 'console.db'}")
    try:
        op = store.add_operator(username, password, org, ConsoleRole(role), display_name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="USERNAME") from None
    click.echo(f"operator {op.username}: {op.org}, {op.role.value}")
