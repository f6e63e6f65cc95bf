"""The batch sequence number: persisted across restarts, never fatal when its file is damaged."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.sequence import Sequence


def test_a_new_sequence_starts_at_zero(tmp_path: Path) -> None:
    seq = Sequence(tmp_path / "seq")
    assert seq.current == -1
    assert [seq.take() for _ in range(3)] == [0, 1, 2]
    assert seq.current == 2


def test_the_sequence_continues_across_instances_from_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "seq"
    first = Sequence(path)
    assert [first.take() for _ in range(5)] == [0, 1, 2, 3, 4]

    second = Sequence(path)  # a restarted gateway
    assert second.current == 4
    assert [second.take() for _ in range(2)] == [5, 6]
    assert Sequence(path).take() == 7


def test_the_file_is_replaced_whole_leaving_no_temporary_behind(tmp_path: Path) -> None:
    path = tmp_path / "gateway.seq"
    seq = Sequence(path)
    seq.take()
    seq.take()
    assert path.read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gateway.seq"]


@pytest.mark.parametrize(
    "content", [b"", b"\n", b"12ab", b"\x00\x00\x00", b"\xff\xfe\xfd", b"3.5", b"-3", b"9" * 20]
)
def test_a_corrupt_file_restarts_at_zero_without_raising(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "seq"
    path.write_bytes(content)

    seq = Sequence(path)

    assert seq.take() == 0
    assert Sequence(path).take() == 1  # and the file is healthy again
