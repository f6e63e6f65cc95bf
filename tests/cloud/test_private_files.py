"""Files holding password and token hashes are the owner's alone: 0600 in 0700 folders (issue 18
point 7), whatever the umask, for every SQLite store and the console's folder."""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cloud.apps.cli.provision import group as provision
from cloud.console.app import Console
from cloud.console.auth import ConsoleRole
from cloud.console.live import Sources
from cloud.console.store import ConsoleStore
from cloud.core.geo import ServiceAreas
from cloud.io.db import make_engine
from cloud.io.orgstore import OrgStore
from cloud.rules.store import AlertStore
from cloud.worksites.store import WorksiteStore


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The usual 022, under which a plain open() creates files others can read."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _console(url: str) -> Any:
    store = ConsoleStore(url)
    store.add_operator("anna", "a-password", "comune-prato", ConsoleRole.MUNICIPALITY_OPERATOR)
    return store


STORES: dict[str, Callable[[str], Any]] = {
    "worksite and organisation registry": lambda url: WorksiteStore.open(url, areas=ServiceAreas.load()),
    "organisation registry alone": OrgStore.open,
    "console": _console,
    "alerts": AlertStore,
}


@pytest.mark.parametrize("open_store", STORES.values(), ids=STORES.keys())
def test_a_sqlite_store_is_created_0600_in_a_new_folder_0700(
    tmp_path: Path, open_store: Callable[[str], Any]
) -> None:
    db = tmp_path / "new" / "deeper" / "store.db"

    store = open_store(f"sqlite:///{db}")

    try:
        assert mode(db.parent) == 0o700
        assert mode(db.parent.parent) == 0o700
        written = [p for p in db.parent.iterdir() if p.name.startswith("store.db")]
        assert written  # the database, and its -wal and -shm beside it once written
        assert {p.name: mode(p) for p in written} == {p.name: 0o600 for p in written}
    finally:
        getattr(store, "close", store.engine.dispose)()


def test_an_existing_store_readable_by_others_is_closed_to_them_when_opened(tmp_path: Path) -> None:
    db = tmp_path / "worksites.db"
    WorksiteStore.open(f"sqlite:///{db}", areas=ServiceAreas.load()).close()
    db.chmod(0o644)

    WorksiteStore.open(f"sqlite:///{db}", areas=ServiceAreas.load()).close()

    assert mode(db) == 0o600


def test_the_consoles_folder_holds_its_database_and_uploads_closed_to_others(tmp_path: Path) -> None:
    console = Console.open(tmp_path / "console", Sources(worksites=None, alerts=None, influx=None))
    try:
        assert mode(tmp_path / "console") == 0o700
        assert mode(tmp_path / "console" / "console.db") == 0o600
        for sub in ("uploads", "uploads/files", "uploads/thumbs"):
            assert mode(tmp_path / "console" / sub) == 0o700, sub
    finally:
        console.store.engine.dispose()


def test_provisioning_an_organisation_writes_its_registry_0600(tmp_path: Path) -> None:
    db = tmp_path / "registry" / "worksites.db"
    result = CliRunner().invoke(
        provision,
        ["--dir", str(tmp_path / "prov"), "org", "add", "--id", "alia", "--db", f"sqlite:///{db}"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert mode(db) == 0o600
    assert mode(db.parent) == 0o700
    for path in (tmp_path / "prov").rglob("*"):
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path


def test_processes_opening_one_new_registry_at_once_all_get_it_migrated(tmp_path: Path) -> None:
    # The demo's API and console open the registry together: SQLite runs DDL outside
    # transactions, and two migrations at once failed with "table ... already exists".
    url = f"sqlite:///{tmp_path / 'registry' / 'worksites.db'}"
    start = time.time() + 2.0  # every process imported by then: they migrate at once
    code = (
        "import sys, time\n"
        "from cloud.core.geo import ServiceAreas\n"
        "from cloud.worksites.store import WorksiteStore\n"
        f"time.sleep(max(0.0, {start} - time.time()))\n"
        f"WorksiteStore.open({url!r}, areas=ServiceAreas.load()).close()\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(4)
    ]
    errors = [p.communicate(timeout=60)[1] for p in procs]

    assert [p.returncode for p in procs] == [0] * 4, "\n".join(errors)
    assert mode(tmp_path / "registry" / "worksites.db") == 0o600


@pytest.mark.parametrize("name", ["alerts.db", "alerts.db-wal", "alerts.db-shm"])
def test_opening_a_store_again_keeps_the_locks_this_process_holds_on_its_files(
    tmp_path: Path, name: str
) -> None:
    # SQLite's locks are POSIX locks, which a process loses on a file as soon as it closes any
    # descriptor of it: an engine opened beside another (the alert store beside its outbox) must
    # not open the database, its -wal or its -shm, or the first one's commits can vanish.
    db = tmp_path / "alerts.db"
    for path in (db, tmp_path / "alerts.db-wal", tmp_path / "alerts.db-shm"):
        path.write_bytes(b"")
    held = tmp_path / name
    with held.open("r+b") as ours:
        fcntl.lockf(ours, fcntl.LOCK_EX | fcntl.LOCK_NB)
        make_engine(f"sqlite:///{db}").dispose()
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import fcntl; fcntl.lockf(open({str(held)!r}, 'r+b'), fcntl.LOCK_EX | fcntl.LOCK_NB)",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    assert probe.returncode != 0, f"another process could lock {name}: this process's lock was dropped"
