"""The spool: durable staging and sealing, seq in the same transaction, a bounded size."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner

from gateway.cli import group
from gateway.spool import OutgoingMessage, Priority, Spool


def msg(n: int, size: int = 100, priority: Priority = Priority.NORMAL, topic: str = "t") -> OutgoingMessage:
    return OutgoingMessage(topic, b"x" * size, priority, readings=n)


def test_staged_readings_survive_a_reopen_until_sealed(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    spool = Spool(path)
    spool.stage([("parking", 2, b'{"a":1},{"a":2}'), ("fleet", 1, b'{"b":1}')], {"clock_us": "42"})
    spool.close()  # as if killed: nothing was sealed

    again = Spool(path)
    assert [(s.kind, s.readings, s.fragment) for s in again.staged()] == [
        ("parking", 2, b'{"a":1},{"a":2}'),
        ("fleet", 1, b'{"b":1}'),
    ]
    assert again.staged_readings == 3
    assert again.get_meta("clock_us") == "42"
    again.seal("parking", [msg(2)], next_seq=1)
    assert [s.kind for s in again.staged()] == ["fleet"]
    assert (again.messages, again.message_readings, again.staged_readings) == (1, 2, 1)
    again.close()
    third = Spool(path)
    assert (third.messages, third.message_readings, third.staged_readings, third.next_seq) == (1, 2, 1, 1)


def test_the_next_seq_is_committed_with_the_batches_that_used_the_previous_ones(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    spool.stage([("parking", 1, b"{}")])
    spool.seal("parking", [msg(1), msg(1)], next_seq=2)
    spool.close()
    assert Spool(tmp_path / "s.sqlite").next_seq == 2


def test_messages_come_back_in_spool_order_and_ids_are_never_reused(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    spool.append([msg(1, topic="a"), msg(1, topic="b"), msg(1, topic="c")])
    rows = spool.fetch(0, None, 10)
    assert [r.topic for r in rows] == ["a", "b", "c"]
    assert [r.topic for r in spool.fetch(rows[0].id, rows[1].id, 10)] == ["b"]
    spool.delete(r.id for r in rows)
    assert spool.messages == 0
    spool.append([msg(1, topic="d")])
    (d,) = spool.fetch(0, None, 10)
    assert d.id > rows[-1].id  # the agent's dispatch cursors rely on it


def test_deleting_an_id_twice_or_an_unknown_one_changes_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    spool.append([msg(3), msg(4)])
    first = spool.fetch(0, None, 1)[0].id
    spool.delete([first])
    spool.delete([first, 999])
    assert (spool.messages, spool.message_readings) == (1, 4)


def test_when_full_the_oldest_low_priority_messages_go_first_and_are_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_bytes=1000, min_free_bytes=0)
    spool.append([msg(1, 200, Priority.NORMAL, "normal-1"), msg(1, 200, Priority.LOW, "low-1")])
    spool.append([msg(1, 200, Priority.HIGH, "health-1"), msg(1, 200, Priority.LOW, "low-2")])
    spool.append([msg(1, 200, Priority.NORMAL, "normal-2")])
    assert spool.dropped_messages == 0  # exactly at the bound
    spool.append([msg(5, 300, Priority.NORMAL, "normal-3")])
    assert [r.topic for r in spool.fetch(0, None, 10)] == [
        "normal-1", "health-1", "normal-2", "normal-3",
    ]  # fmt: skip
    assert (spool.dropped_messages, spool.dropped_readings) == (2, 2)
    spool.append([msg(1, 500, Priority.NORMAL, "normal-4")])
    assert [r.topic for r in spool.fetch(0, None, 10)] == ["health-1", "normal-3", "normal-4"]
    assert spool.message_bytes <= 1000
    spool.close()
    assert Spool(tmp_path / "s.sqlite").dropped_messages == spool.dropped_messages  # persisted


def test_health_is_dropped_only_when_nothing_else_is_left(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_bytes=500, min_free_bytes=0)
    spool.append([msg(0, 200, Priority.HIGH, "h1"), msg(0, 200, Priority.HIGH, "h2")])
    spool.append([msg(0, 200, Priority.HIGH, "h3")])
    assert [r.topic for r in spool.fetch(0, None, 10)] == ["h2", "h3"]


def test_a_disk_below_its_free_space_floor_makes_the_spool_drop_too(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_bytes=10**12, min_free_bytes=10**18)  # never enough
    spool.append([msg(1, 100, Priority.LOW, "a"), msg(1, 100, Priority.HIGH, "h")])
    assert spool.messages == 0
    assert spool.dropped_messages == 2


def test_the_database_is_in_wal_mode_with_fsync_on_commit(tmp_path: Path) -> None:
    Spool(tmp_path / "s.sqlite").close()
    db = sqlite3.connect(tmp_path / "s.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_sitroom_gateway_spool_shows_what_is_queued(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "gw-a.spool.sqlite")
    spool.append([msg(7), msg(5)])
    spool.stage([("parking", 3, b"{}")])
    spool.close()
    result = CliRunner().invoke(group, ["spool", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("gw-a: 15 readings queued (2 messages, 3 staged)")
