"""The NGSI-LD export's wiring: which sources `sitroom exchange export|publish` describe.

- sensors: the gateway configs of `--configs` (the installation records), each sensor's kind as
  its gateway declares it: `sitroom gateway meta` prints the very meta the gateway publishes,
  so the kinds come from the gateways' own code (which `cloud` may not import) and never from a
  table of ours;
- places: the installation file's sites, and with an InfluxDB the places partners gave
  (`io/influx/sites.py`);
- latest readings: InfluxDB's (`io/influx/latest.py`), when one is configured;
- worksites: the worksite registry; with none configured, Prato's demo worksites, loaded into a
  registry of their own (a temporary SQLite file), as `sitroom cloud api --demo-data` loads them.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cloud.apps import demo
from cloud.core.geo import FixedSites, MergedSites, SiteSource
from cloud.core.worksites import WorksiteDetails
from cloud.exchange.catalogue import Installed, gather, installed_sensors
from cloud.exchange.export import Export, export
from cloud.io.influx.client import InfluxClient
from cloud.io.influx.latest import InfluxLatest
from cloud.io.influx.sites import InfluxSites
from cloud.worksites.store import WorksiteStore
from edge.contract import ContractError, GatewayMeta, decode_meta

log = logging.getLogger(__name__)


class DeclarationsError(RuntimeError):
    """`sitroom gateway meta` could not say what the gateways declare."""


def declarations(config_files: Sequence[Path]) -> dict[tuple[str, str], GatewayMeta]:
    """What the gateway of each config declares, by (org, gateway); configs the gateway refuses
    are reported (with their file, field and value) and left out."""
    if not config_files:
        return {}
    done = subprocess.run(
        [sys.executable, "-m", "edge.cli", "gateway", "meta", *map(str, config_files)],
        capture_output=True,
        check=False,
        timeout=120,
    )
    for problem in done.stderr.decode(errors="replace").splitlines():
        log.warning("gateway config left out of the export: %s", problem)
    if done.returncode not in (0, 1):
        raise DeclarationsError(f"`sitroom gateway meta` failed ({done.returncode}): {done.stderr[-500:]!r}")
    out = {}
    for line in done.stdout.splitlines():
        try:
            meta = decode_meta(line)
        except ContractError as exc:
            raise DeclarationsError(f"`sitroom gateway meta` printed a bad meta: {exc}") from None
        out[(meta.org, meta.gateway)] = meta
    return out


def installed(config_dir: Path | None) -> list[Installed]:
    """The sensors of the gateway configs in `config_dir` (none when it is not a folder)."""
    if config_dir is None or not config_dir.is_dir():
        return []
    files = sorted(config_dir.glob("*.yaml"))
    return installed_sensors(files, declarations(files))


@dataclass(frozen=True, slots=True)
class ExportSources:
    """What to describe; each missing source is simply not used (see the module docstring)."""

    config_dir: Path | None
    influx: InfluxClient | None
    worksites_db: str | None
    since: timedelta = timedelta(days=7)


def _registry_worksites(store: WorksiteStore) -> Callable[[], Sequence[WorksiteDetails]]:
    def read() -> Sequence[WorksiteDetails]:
        good, bad = store.search_readable()
        for row in bad:
            log.warning("worksite %s not exported: %s", row.id, row.reason)
        return good

    return read


@contextmanager
def exporter(sources: ExportSources) -> Iterator[Callable[[], Export]]:
    """`with exporter(sources) as compute:` — `compute()` is the export as of now (the
    publisher calls it every interval); the stores it reads stay open inside the block."""
    with ExitStack() as stack:
        things = installed(sources.config_dir)
        sites: SiteSource = FixedSites.from_file()
        latest = None
        if sources.influx is not None:
            sites = MergedSites(sites, InfluxSites(sources.influx, refresh_s=0))
            latest = InfluxLatest(sources.influx)
        if sources.worksites_db:
            store = WorksiteStore.open(sources.worksites_db, areas=None)
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sitroom-export-")))
            store = WorksiteStore.open(f"sqlite:///{folder / 'demo.db'}", areas=None)
            demo.seed_registry(store)
        stack.callback(store.close)
        worksites = _registry_worksites(store)

        def compute() -> Export:
            return export(
                gather(
                    installed=things, latest=latest, sites=sites, worksites=worksites(), since=sources.since
                )
            )

        yield compute


__all__ = ["DeclarationsError", "ExportSources", "declarations", "exporter", "installed"]
