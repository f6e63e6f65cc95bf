"""Ingest accounting: batch sequence gaps and duplicates, time limits, bounded dead letters."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.core.admission import PolicyError, TimeLimits
from cloud.core.settings import CloudSettings
from cloud.ingest.consumer import Inbound, Ingest
from cloud.ingest.deadletter import MEASUREMENT, DeadLetter
from cloud.ingest.seqledger import MAX_HOLE, MAX_INTERVALS, BatchReport, SeqAccounts, SeqLedger
from cloud.ingest.stats import IngestStats
from cloud.io.influx.client import InfluxClient
from cloud.io.influx.lineprotocol import timestamp_ns
from edge.contract import (
    ContractError,
    PayloadTooLargeError,
    Reading,
    SchemaError,
    SensorKind,
    format_ts,
    topics,
)

NOW = datetime(2026, 11, 24, 8, tzinfo=UTC)
TOPIC = "sr/v1/comune-prato/gw-mercatale/data/parking"


# --- batch sequence ---------------------------------------------------------------------------


def tracker(*seqs: int) -> SeqLedger:
    t = SeqLedger()
    for seq in seqs:
        t.see(seq)
    return t


def test_in_order_batches_have_no_gaps_and_no_duplicates() -> None:
    t = tracker(0, 1, 2, 3)
    assert (t.highest, t.gaps, t.duplicates, t.receipts) == (3, 0, 0, 4)


def test_skipped_batches_are_counted_as_gaps() -> None:
    t = tracker(0, 1, 5)
    assert (t.highest, t.gaps, t.missing()) == (5, 3, [(2, 4)])


def test_a_late_arrival_fills_its_gap() -> None:
    t = tracker(0, 1, 5, 3)
    assert (t.gaps, t.missing(), t.duplicates) == (2, [(2, 2), (4, 4)], 0)
    t.see(2)
    t.see(4)
    assert (t.gaps, t.duplicates, t.highest, t.starts, t.ends) == (0, 0, 5, [0], [5])


def test_a_redelivered_batch_is_counted_as_a_duplicate() -> None:
    t = tracker(0, 1, 2, 2, 1, 5, 3, 3)
    assert (t.duplicates, t.gaps, t.receipts) == (3, 1, 8)


def test_the_first_seq_seen_opens_no_gap() -> None:
    # Ingest may start long after the gateway: seq 1000 first is not 1000 lost batches.
    assert tracker(1000, 1001).gaps == 0


def test_a_huge_jump_counts_a_bounded_number_of_missing_seqs() -> None:
    t = tracker(0, 10**9)
    assert t.gaps == MAX_HOLE
    assert t.highest == 10**9


def test_the_oldest_holes_are_settled_as_lost_when_there_are_too_many() -> None:
    t = tracker(*range(0, 2 * (MAX_INTERVALS + 5), 2))
    assert len(t.starts) == MAX_INTERVALS
    assert t.gaps == MAX_INTERVALS + 4
    t.see(1)  # a hole settled long ago: it stays lost
    assert t.gaps == MAX_INTERVALS + 4


@given(st.lists(st.integers(min_value=0, max_value=60), max_size=80), st.randoms())
def test_gaps_and_duplicates_depend_only_on_which_batches_arrived_not_their_order(
    seqs: list[int], rnd: random.Random
) -> None:
    shuffled = seqs[:]
    rnd.shuffle(shuffled)
    a, b = tracker(*seqs), tracker(*shuffled)
    assert (a.gaps, a.duplicates, a.highest, a.receipts) == (b.gaps, b.duplicates, b.highest, b.receipts)
    if seqs:
        assert a.gaps == max(seqs) - min(seqs) + 1 - len(set(seqs))
        assert a.duplicates == len(seqs) - len(set(seqs))


def report(
    job: int, gateways: dict[str, list[int]], *, instance: str = "w-a", run: str = "0123abcd"
) -> BatchReport:
    return BatchReport(group="g", instance=instance, run=run, job=job, gateways=gateways)


@given(
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 40)), max_size=120),
    st.randoms(),
)
def test_the_reports_of_several_workers_add_up_to_what_one_worker_taking_all_counts(
    receipts: list[tuple[int, int]], rnd: random.Random
) -> None:
    alone = SeqAccounts()
    alone.apply(report(0, {"o/gw": [seq for _, seq in receipts]}))
    shared = SeqAccounts()
    jobs = [
        report(job, {"o/gw": [seq]}, instance=f"w-{worker}") for job, (worker, seq) in enumerate(receipts)
    ]
    rnd.shuffle(jobs)
    for r in jobs:
        shared.apply(r)
    assert shared.snapshot() == alone.snapshot()


def test_a_report_applied_twice_counts_once_but_another_runs_job_of_the_same_number_counts() -> None:
    accounts = SeqAccounts()
    assert accounts.apply(report(5, {"o/gw": [1, 2]}))
    assert not accounts.apply(report(5, {"o/gw": [1, 2]}))
    assert accounts.apply(report(5, {"o/gw": [3]}, run="4567cdef"))
    assert accounts.snapshot()[("o", "gw")] == {"highest_seq": 3, "gaps": 0, "duplicates": 0, "batches": 3}
    assert (accounts.reports_applied, accounts.reports_repeated) == (2, 1)


GOOD_REPORT = {"v": 1, "group": "g", "instance": "w", "run": "0123abcd", "job": 0, "gateways": {}}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b"not json", "payload"),
        (orjson.dumps(GOOD_REPORT | {"gateways": {"o-gw": [1]}}), "gateways.o-gw.[key]"),
        (orjson.dumps(GOOD_REPORT | {"gateways": {"o/gw": [-1]}}), "gateways.o/gw.0"),
        (orjson.dumps(GOOD_REPORT | {"v": 2}), "v"),
    ],
)
def test_a_broken_batch_report_is_refused_naming_the_field(payload: bytes, field: str) -> None:
    with pytest.raises(ContractError) as caught:
        BatchReport.from_json(payload)
    assert caught.value.field == field


def test_a_broken_or_foreign_batch_report_is_acked_and_changes_no_count() -> None:
    ingest = Ingest(CloudSettings(share_group="g", instance="w-a", org_filter="o"))
    try:
        to = topics.ingest_batches("w-b")
        sent = [
            (b"junk", "refused"),
            (b"x" * (ingest.settings.max_payload_bytes + 1), "refused"),
            (
                report(0, {"o/gw": [9]}, instance="w-b").model_copy(update={"group": "other"}).to_json(),
                "another group's",
            ),
            (report(1, {"elsewhere/gw": [9]}, instance="w-b").to_json(), "another organisation's"),
            (report(2, {"o/gw": [1, 3]}, instance="w-b").to_json(), "counted"),
            (report(2, {"o/gw": [1, 3]}, instance="w-b").to_json(), "a repeat"),
        ]
        out = ingest.prepare([Inbound(to, payload, mid, 1) for mid, (payload, _) in enumerate(sent)], NOW)
        assert (len(out.acks), out.lines, out.deadletters) == (len(sent), [], [])
        assert ingest.stats.snapshot()["batch_reports_refused"] == 2
        assert ingest.stats.accounts.snapshot() == {
            ("o", "gw"): {"highest_seq": 3, "gaps": 1, "duplicates": 0, "batches": 2}
        }
    finally:
        ingest.influx.close()


def test_stats_snapshot_reports_sequence_accounting_per_gateway() -> None:
    stats = IngestStats()
    stats.accounts.apply(report(0, {"comune-prato/gw-mercatale": [0, 1, 4, 4], "alia/gw-fleet-alia": [7]}))
    stats.wrote_batches([("alia", "gw-fleet-alia", 7)])
    stats.deadlettered("schema", 2)
    stats.deadlettered("policy")
    stats.add(messages=3, readings_written=40)

    snap = stats.snapshot()
    assert snap["gateways"] == {
        "alia/gw-fleet-alia": {"highest_seq": 7, "gaps": 0, "duplicates": 0, "batches": 1, "received": 1},
        "comune-prato/gw-mercatale": {
            "highest_seq": 4,
            "gaps": 2,
            "duplicates": 1,
            "batches": 4,
            "received": 0,
        },
    }
    assert (snap["deadletters"], snap["deadletters_by_reason"]) == (3, {"schema": 2, "policy": 1})
    assert (snap["messages"], snap["readings_written"]) == (3, 40)
    orjson.dumps(snap)  # it is published as JSON


# --- time limits ------------------------------------------------------------------------------

LIMITS = TimeLimits(max_future=timedelta(seconds=300), max_age=timedelta(days=30))


def reading(ts: datetime) -> Reading:
    return Reading(
        kind=SensorKind.PARKING,
        org="comune-prato",
        gateway="gw-mercatale",
        sensor="p-mercatale",
        ts=ts,
        fields={"occupied": 10, "capacity": 100, "occupancy_pct": 10.0},
    )


@pytest.mark.parametrize(
    "ts", [NOW, NOW + timedelta(seconds=300), NOW - timedelta(days=30), NOW - timedelta(days=29, hours=23)]
)
def test_timestamps_within_the_limits_pass(ts: datetime) -> None:
    assert LIMITS.check(reading(ts), NOW) is None


def test_a_far_future_timestamp_is_a_policy_error_naming_ts() -> None:
    ts = NOW + timedelta(seconds=301)
    err = LIMITS.check(reading(ts), NOW)
    assert isinstance(err, PolicyError)
    assert (err.field, err.value, err.reason) == ("ts", format_ts(ts), "policy")
    assert "more than 300 s in the future" in err.message
    assert str(err).startswith("ts: ")


def test_a_too_old_timestamp_is_a_policy_error_naming_ts() -> None:
    ts = NOW - timedelta(days=30, seconds=1)
    err = LIMITS.check(reading(ts), NOW)
    assert isinstance(err, PolicyError)
    assert (err.field, err.value) == ("ts", format_ts(ts))
    assert "older than 30 days" in err.message


def test_a_fractional_max_age_is_reported_as_it_is() -> None:
    limits = TimeLimits(max_future=timedelta(0), max_age=timedelta(hours=12))
    err = limits.check(reading(NOW - timedelta(hours=13)), NOW)
    assert err is not None
    assert "older than 0.5 days" in err.message


# --- dead letters -----------------------------------------------------------------------------


def test_a_dead_letter_keeps_a_large_payloads_size_and_hash_but_only_an_excerpt() -> None:
    payload = b'{"v": 1, "junk": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    err = PayloadTooLargeError("too large", field="payload", value=len(payload))

    dl = DeadLetter.of(err, topic=TOPIC, payload=payload, org="comune-prato", gateway="gw-mercatale")

    assert dl.payload_size == len(payload) > 2 * 1024 * 1024
    assert dl.payload_sha256 == hashlib.sha256(payload).hexdigest()
    assert dl.payload_excerpt.startswith('{"v": 1, "junk": "xxx')
    assert len(dl.payload_excerpt) <= 256
    assert (dl.reason, dl.field, dl.value) == ("too_large", "payload", repr(len(payload)))
    assert len(dl.to_json()) < 2000
    assert len(dl.to_line(NOW)) < 2000


def test_a_dead_letter_bounds_a_huge_offending_value_and_topic() -> None:
    huge = "y" * (2 * 1024 * 1024)
    err = SchemaError("not an id", field="readings[0].sensor", value=huge)
    dl = DeadLetter.of(err, topic="sr/" + "z" * 5000, payload=huge.encode())
    assert len(dl.value) < 200
    assert len(dl.topic) == 256
    assert (dl.org, dl.gateway) == (topics.UNKNOWN, topics.UNKNOWN)


def test_a_dead_letter_excerpt_of_invalid_utf8_does_not_raise() -> None:
    dl = DeadLetter.of(None, topic=TOPIC, payload=b"\xff\xfe\x00garbage", reason="bad_json")
    assert dl.payload_excerpt.endswith("garbage")
    assert (dl.reason, dl.field, dl.value) == ("bad_json", "", "")


def test_dead_letter_lines_at_distinct_timestamps_are_distinct_points(influx_db: InfluxClient) -> None:
    err = SchemaError("out of range [0, 100]", field="readings[0].fields.occupancy_pct", value=140.0)
    dl = DeadLetter.of(err, topic=TOPIC, payload=b"{}", org="comune-prato", gateway="gw-mercatale")
    one_us = timedelta(microseconds=1)

    lines = [dl.to_line(NOW), dl.to_line(NOW + one_us), dl.to_line(NOW + 2 * one_us)]
    assert len(set(lines)) == 3
    assert [int(x.rsplit(" ", 1)[1]) for x in lines] == [timestamp_ns(NOW) + i * 1000 for i in range(3)]

    influx_db.write(lines)
    (series,) = influx_db.series(f'SELECT count("count") FROM "{MEASUREMENT}"')
    assert series["values"][0][1] == 3
    (series,) = influx_db.series(f'SELECT "field", "value" FROM "{MEASUREMENT}" LIMIT 1')
    assert series["values"][0][1:] == ["readings[0].fields.occupancy_pct", "140.0"]


def test_dead_letters_of_two_workers_at_the_same_nanosecond_are_both_kept(influx_db: InfluxClient) -> None:
    err = SchemaError("out of range [0, 100]", field="readings[0].fields.occupancy_pct", value=140.0)
    dl = DeadLetter.of(err, topic=TOPIC, payload=b"{}", org="comune-prato", gateway="gw-mercatale")
    influx_db.write([dl.to_line(NOW, "ingest-a"), dl.to_line(NOW, "ingest-b")])
    (series,) = influx_db.series(f'SELECT count("count") FROM "{MEASUREMENT}"')
    assert series["values"][0][1] == 2
