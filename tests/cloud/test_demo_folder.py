"""What a demo finds in its data folder: another demo, processes an earlier run left, stores a
crash damaged (cloud/dev/demo_folder.py, cloud/dev/stores.py, cloud/dev/demo_broker.py)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud.apps.demo import DemoError, DemoOptions, run_demo
from cloud.dev.demo_broker import rescue_registry
from cloud.dev.demo_folder import DemoFolder, DemoRunningError
from cloud.dev.processes import start_ticks
from cloud.dev.stores import problem_with, rescue
from cloud.rules.store import AlertStore

from support import wait_until

SILENCES = 20


def _opens_alerts(path: Path) -> None:
    AlertStore(f"sqlite:///{path}").close()


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[DemoFolder]:
    f = DemoFolder(tmp_path / "demo")
    f.claim()
    yield f
    f.release()


@pytest.fixture
def alerts_db(tmp_path: Path) -> Path:
    """An alert store holding a few rows, as a run leaves it."""
    path = tmp_path / "alerts.db"
    store = AlertStore(f"sqlite:///{path}")
    now = datetime.now(UTC)
    for n in range(SILENCES):  # rows of 1 kB: the table spreads over several pages
        store.add_silence(
            starts_at=now, ends_at=now + timedelta(hours=1), reason=f"{n} " + "x" * 1000, created_by="anna"
        )
    store.close()
    return path


def _silences(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT count(*) FROM silences").fetchone()[0])


def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def test_a_second_demo_on_a_folder_is_told_the_pid_and_urls_of_the_running_one(folder: DemoFolder) -> None:
    folder.begin()
    folder.record_url("console", "http://127.0.0.1:5000/console/")
    with pytest.raises(DemoRunningError) as caught:
        DemoFolder(folder.path).claim()
    message = str(caught.value)
    assert f"pid {os.getpid()}" in message
    assert "console http://127.0.0.1:5000/console/" in message
    assert "--data-dir" in message
    assert "\n" not in message


def test_the_folder_is_free_again_once_its_demo_released_it(folder: DemoFolder) -> None:
    folder.release()
    other = DemoFolder(folder.path)
    other.claim()
    other.release()


def test_processes_an_earlier_run_recorded_are_stopped(folder: DemoFolder) -> None:
    proc = _spawn([sys.executable, "-c", "import time; time.sleep(60)"])
    folder.begin()
    folder.record("ingest", proc.pid)
    stopped = DemoFolder(folder.path).stop_leftovers()
    assert [(s.name, s.pid) for s in stopped] == [("ingest", proc.pid)]
    assert proc.wait(5) is not None


def test_a_service_of_an_older_run_that_names_the_folder_is_stopped_without_a_pid_file(
    folder: DemoFolder,
) -> None:
    # The shape of the demo's children: `python -m edge.cli -v cloud ingest`, its stores in the
    # folder named by its environment or arguments.
    sleeper = "import time; time.sleep(60)"
    proc = _spawn([sys.executable, "-c", sleeper, "edge.cli", "-v", "cloud", "ingest", f"{folder.path}/x.db"])
    wait_until(lambda: start_ticks(proc.pid), 5)
    stopped = folder.stop_leftovers()
    assert [(s.name, s.pid) for s in stopped] == [("cloud", proc.pid)]
    assert proc.wait(5) is not None


def test_a_process_that_is_not_the_demos_is_left_alone_even_if_it_names_the_folder(
    folder: DemoFolder,
) -> None:
    proc = _spawn([sys.executable, "-c", "import time; time.sleep(60)", f"{folder.path}/logs/ingest.log"])
    try:
        wait_until(lambda: start_ticks(proc.pid), 5)
        assert folder.stop_leftovers() == []
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_fresh_empties_the_folder_but_for_its_lock(folder: DemoFolder) -> None:
    (folder.path / "alerts.db").write_bytes(b"x")
    (folder.path / "console").mkdir()
    (folder.path / "console" / "console.db").write_bytes(b"x")
    folder.empty()
    assert sorted(p.name for p in folder.path.iterdir()) == ["demo.lock"]


def test_a_healthy_store_with_its_wal_after_a_crash_is_kept_as_it_is(tmp_path: Path, alerts_db: Path) -> None:
    writer = sqlite3.connect(alerts_db)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute(
        "INSERT INTO silences (kind, starts_at, ends_at, reason, created_by) "
        "VALUES ('silence', '2026-01-01', '2026-01-02', 'in the wal', 'x')"
    )
    writer.commit()  # in the -wal, not checkpointed: as a writer killed now leaves it
    assert Path(f"{alerts_db}-wal").stat().st_size > 0
    assert rescue(alerts_db, tmp_path / "aside", _opens_alerts) is None
    assert _silences(alerts_db) == SILENCES + 1
    writer.close()


def test_a_truncated_store_is_rebuilt_from_the_rows_that_survive_and_the_damage_moved_aside(
    tmp_path: Path, alerts_db: Path
) -> None:
    size = alerts_db.stat().st_size
    os.truncate(alerts_db, size - 4096)  # the last page gone, as a full disk leaves it
    (tmp_path / "alerts.db-wal").write_bytes(b"")
    (tmp_path / "alerts.db-shm").write_bytes(b"\0" * 32768)
    assert problem_with(alerts_db) is not None
    aside = tmp_path / "aside"

    rescued = rescue(alerts_db, aside, _opens_alerts)

    assert rescued is not None
    assert 0 < _silences(alerts_db) < SILENCES
    assert "rows recovered into a new alerts.db" in rescued.line
    assert str(aside) in rescued.line
    assert "\n" not in rescued.line
    assert (aside / "alerts.db").exists()
    left = sorted(p.name for p in tmp_path.glob("alerts.db*"))
    assert left == ["alerts.db", "alerts.db.lock"], "no stale -wal/-shm, nothing of the rebuilt copy stays"
    assert problem_with(alerts_db) is None
    _opens_alerts(alerts_db)


def test_a_file_that_is_no_database_is_moved_aside_and_the_store_starts_empty(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    db.write_bytes(b"this is not SQLite" * 100)
    rescued = rescue(db, tmp_path / "aside", _opens_alerts)
    assert rescued is not None
    assert rescued.rows_recovered == 0
    assert "nothing recoverable, alerts.db starts empty" in rescued.line
    assert not db.exists()
    assert (tmp_path / "aside" / "alerts.db").exists()


def test_a_wal_and_shm_left_without_their_database_are_moved_aside(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    (tmp_path / "alerts.db-wal").write_bytes(b"\0" * 100)
    (tmp_path / "alerts.db-shm").write_bytes(b"\0" * 100)
    rescued = rescue(db, tmp_path / "aside", _opens_alerts)
    assert rescued is not None
    assert "alerts.db-wal, alerts.db-shm left without their database" in rescued.line
    assert list(tmp_path.glob("alerts.db*")) == []


def test_an_unreadable_identity_registry_is_moved_aside(tmp_path: Path) -> None:
    provision = tmp_path / "provision"
    provision.mkdir()
    (provision / "registry.json").write_text("{ truncated")
    said = rescue_registry(provision, tmp_path / "aside")
    assert said is not None
    assert "registry.json is not a valid registry" in said
    assert not provision.exists()
    assert (tmp_path / "aside" / "provision" / "registry.json").exists()


def test_a_store_that_still_cannot_be_opened_stops_the_demo_in_one_line_naming_it_and_fresh(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Healthy SQLite, but not a store the demo can open (a table of the same name, other columns).
    with contextlib.closing(sqlite3.connect(tmp_path / "alerts.db")) as conn:
        conn.execute("CREATE TABLE sitroom_migrations (something_else TEXT)")
    with pytest.raises(DemoError) as caught:
        run_demo(DemoOptions(configs=[], data_dir=tmp_path))
    message = str(caught.value)
    assert f"cannot open {tmp_path / 'alerts.db'}" in message
    assert "`--fresh` starts from an empty data folder" in message
    assert "\n" not in message
    assert not (tmp_path / "demo.json").exists(), "the failed start leaves no pid file"
    again = DemoFolder(tmp_path)
    again.claim()  # the folder was released
    again.release()
    assert "Traceback" not in capsys.readouterr().out
