"""The `sitroom` command: its root, `sitroom edge ...`, and the groups other packages mount.

`gateway` and `cloud` add their command groups through the `sitroom.cli` entry-point group
(pyproject.toml), so this module never imports them: the arrows point `gateway → edge ← cloud`.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points
from pathlib import Path

import click

from edge.contract import ContractError, decode


class _Root(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *(ep.name for ep in entry_points(group="sitroom.cli"))})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None:
            return found
        for ep in entry_points(group="sitroom.cli"):
            if ep.name == cmd_name:
                loaded = ep.load()
                if isinstance(loaded, click.Command):
                    return loaded
        return None


@click.group(cls=_Root)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def root(verbose: int) -> None:
    """Situation Room: mobility data of a city, from street sensors to the control room."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(
        level=max(level, logging.DEBUG),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@root.group()
def edge() -> None:
    """Tools for the wire contract and the edge."""


@edge.command("decode")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def decode_command(file: Path) -> None:
    """Validate a data message (JSON batch) and print its readings, or why it is rejected."""
    try:
        decoded = decode(file.read_bytes())
    except ContractError as exc:
        raise click.ClickException(str(exc)) from None
    for r in decoded.readings:
        click.echo(f"ok      {r.kind.value} {r.org}/{r.gateway}/{r.sensor} {r.ts.isoformat()} {r.fields}")
    for rej in decoded.rejects:
        click.echo(f"reject  {rej.error}")
    if decoded.rejects:
        sys.exit(1)


def main() -> None:
    root()


if __name__ == "__main__":
    main()
