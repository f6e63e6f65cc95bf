"""The InfluxDB client against a real influxd: partial writes isolated, errors sorted by kind."""

from __future__ import annotations

import socket
from collections.abc import Sequence

import pytest

from cloud.dev.servers import Influxd
from cloud.io.influx.client import (
    InfluxClient,
    QueryError,
    RejectedWriteError,
    RetryableWriteError,
)

from support import unique

T0_NS = 1_795_500_000_000_000_000  # 2026-11-24, in nanoseconds


def points(influx: InfluxClient, measurement: str = "m") -> list[float]:
    series = influx.series(f'SELECT "value" FROM "{measurement}"')
    return [row[1] for row in series[0]["values"]] if series else []


class CountingClient(InfluxClient):
    """Counts the write requests, to tell a bisected write from a single one."""

    writes = 0

    def write(self, lines: Sequence[str], *, database: str | None = None) -> None:
        self.writes += 1
        super().write(lines, database=database)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_write_isolating_writes_the_good_lines_and_returns_the_refused_ones(influx_db: InfluxClient) -> None:
    influx_db.write([f"m value=1.0 {T0_NS}"])  # fixes the field's type as float
    lines = [
        f"m value=2.0 {T0_NS + 1}",
        f"m value=3i {T0_NS + 2}",  # integer into a float field: a type conflict
        "this is not line protocol",
        f"m value=4.0 {T0_NS + 3}",
        f"m value=5.0 {T0_NS + 4}",
    ]

    rejected = influx_db.write_isolating(lines)

    assert [(r.index, r.line) for r in rejected] == [(1, lines[1]), (2, lines[2])]
    assert "field type conflict" in rejected[0].message
    assert "unable to parse" in rejected[1].message
    assert points(influx_db) == [1.0, 2.0, 4.0, 5.0]


def test_write_isolating_of_good_lines_is_one_request(influxd: Influxd) -> None:
    client = CountingClient(influxd.url, unique("test_"))
    client.create_database()
    try:
        assert client.write_isolating([f"m value={i}.0 {T0_NS + i}" for i in range(10)]) == []
        assert client.writes == 1
        assert len(points(client)) == 10
    finally:
        client.drop_database()
        client.close()


def test_write_isolating_of_nothing_writes_nothing(influx_db: InfluxClient) -> None:
    assert influx_db.write_isolating([]) == []


def test_a_missing_database_is_raised_not_bisected(influxd: Influxd) -> None:
    client = CountingClient(influxd.url, unique("missing_"))
    try:
        with pytest.raises(RejectedWriteError) as info:
            client.write_isolating([f"m value={i}.0 {T0_NS + i}" for i in range(8)])
        assert info.value.status == 404
        assert "database not found" in info.value.message
        assert client.writes == 1
    finally:
        client.close()


def test_an_unreachable_server_is_a_retryable_write_error() -> None:
    client = InfluxClient(f"http://127.0.0.1:{closed_port()}", "sitroom", timeout_s=2)
    try:
        with pytest.raises(RetryableWriteError, match="unreachable"):
            client.write([f"m value=1.0 {T0_NS}"])
        with pytest.raises(RetryableWriteError):
            client.write_isolating([f"m value=1.0 {T0_NS}", f"m value=2.0 {T0_NS + 1}"])
        assert not client.ping()
    finally:
        client.close()


def test_ping_answers_true_for_a_running_server(influx_db: InfluxClient) -> None:
    assert influx_db.ping()


def test_large_writes_are_gzipped_and_accepted(influxd: Influxd) -> None:
    client = InfluxClient(influxd.url, unique("test_"), gzip_min_bytes=100)
    client.create_database()
    try:
        client.write([f"m value={i}.5 {T0_NS + i}" for i in range(500)])
        assert len(points(client)) == 500
    finally:
        client.drop_database()
        client.close()


def test_an_unparsable_query_raises_query_error(influx_db: InfluxClient) -> None:
    with pytest.raises(QueryError, match="400"):
        influx_db.query("SELEKT * FROM m")


def test_a_statement_error_in_a_200_answer_raises_query_error(influx_db: InfluxClient) -> None:
    with pytest.raises(QueryError, match="database not found"):
        influx_db.query("SELECT * FROM m", database=unique("missing_"))


def test_a_query_to_an_unreachable_server_raises_query_error() -> None:
    client = InfluxClient(f"http://127.0.0.1:{closed_port()}", "sitroom", timeout_s=2)
    try:
        with pytest.raises(QueryError, match="unreachable"):
            client.query("SHOW DATABASES")
    finally:
        client.close()


def test_create_database_is_idempotent(influx_db: InfluxClient) -> None:
    influx_db.write([f"m value=1.0 {T0_NS}"])
    influx_db.create_database()
    influx_db.create_database()

    (series,) = influx_db.series("SHOW DATABASES")
    assert [row[0] for row in series["values"]].count(influx_db.database) == 1
    assert points(influx_db) == [1.0]  # and keeps what it holds


@pytest.mark.parametrize("name", ['x" ; DROP DATABASE "y', "a\\b", "a\nb"])
def test_a_database_name_that_could_break_out_of_its_quotes_is_refused(influxd: Influxd, name: str) -> None:
    client = InfluxClient(influxd.url, name)
    try:
        with pytest.raises(ValueError, match="database: invalid name"):
            client.create_database()
        with pytest.raises(ValueError, match="database: invalid name"):
            client.drop_database()
    finally:
        client.close()
