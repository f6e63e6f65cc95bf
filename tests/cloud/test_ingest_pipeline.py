"""Ingest's pipeline parts: acks in receive order, a buffer bounded in messages and bytes, clock checks."""

from __future__ import annotations

import threading

import pytest

from cloud.core.settings import CloudSettings
from cloud.ingest.consumer import AckSequencer, Buffer, Inbound, data_subscription
from cloud.ingest.stats import IngestStats

from support import wait_until


def inbound(mid: int, size: int = 10) -> Inbound:
    return Inbound("sr/v1/o/gw/data/parking", b"x" * size, mid, 1)


def test_jobs_finishing_out_of_order_are_acked_in_the_order_they_were_cut() -> None:
    acked: list[int] = []
    seq = AckSequencer(lambda item: acked.append(item.mid))
    jobs = [seq.cut() for _ in range(3)]

    seq.done(jobs[2], [inbound(5), inbound(6)])
    seq.done(jobs[1], [inbound(3), inbound(4)])
    assert acked == []  # job 0 is still being written: [MQTT-4.6.0-2] forbids acking past it
    seq.done(jobs[0], [inbound(1), inbound(2)])

    assert acked == [1, 2, 3, 4, 5, 6]
    assert seq.pending == 0


def test_a_job_that_never_finishes_holds_back_every_later_ack() -> None:
    acked: list[int] = []
    seq = AckSequencer(lambda item: acked.append(item.mid))
    first, second = seq.cut(), seq.cut()
    seq.done(second, [inbound(2)])
    assert (acked, seq.pending, first) == ([], 2, 0)


def test_a_full_buffer_blocks_the_producer_until_the_consumer_takes() -> None:
    buf = Buffer(max_messages=2, max_bytes=1_000_000)
    stop = threading.Event()
    assert buf.put(inbound(1), stop)
    assert buf.put(inbound(2), stop)
    third_in = threading.Event()

    def put_third() -> None:
        buf.put(inbound(3), stop)
        third_in.set()

    t = threading.Thread(target=put_third)
    t.start()
    assert not third_in.wait(0.3)  # backpressure: paho's thread would be waiting here

    got = buf.get(1.0)

    wait_until(third_in.is_set, 10, what="the blocked put to go through")
    t.join(5)
    assert got is not None
    assert got.mid == 1
    assert [buf.get(1.0).mid for _ in range(2)] == [2, 3]  # type: ignore[union-attr]


def test_the_buffer_is_bounded_in_bytes_but_always_takes_one_message() -> None:
    buf = Buffer(max_messages=100, max_bytes=100)
    stop = threading.Event()
    assert buf.put(inbound(1, size=500), stop)  # larger than the bound, but alone
    assert buf.fill() == (1, 500, 500.0)
    stop.set()
    assert not buf.put(inbound(2, size=10), stop)  # full, and stopping: refused, not queued


def test_an_empty_buffer_returns_nothing_after_the_timeout() -> None:
    assert Buffer(1, 1_000_000).get(0.05) is None


def test_clock_offset_beyond_the_threshold_flags_the_gateway_and_lag_is_reported() -> None:
    stats = IngestStats()
    stats.wrote_batches([("o", "gw-good", 1), ("o", "gw-skewed", 1)])
    stats.see_clock("o", "gw-good", lag_s=12.5, offset_s=0.2, threshold_s=5.0)
    stats.see_clock("o", "gw-skewed", lag_s=0.1, offset_s=-42.0, threshold_s=5.0)

    gateways = stats.snapshot()["gateways"]

    assert gateways["o/gw-good"] == {
        "received": 1,
        "lag_s": 12.5, "clock_offset_s": 0.2, "clock_suspect": False,
    }  # fmt: skip
    assert gateways["o/gw-skewed"]["clock_suspect"] is True


def test_the_interval_snapshot_reports_rate_write_latency_and_batch_sizes_then_restarts() -> None:
    stats = IngestStats()
    stats.wrote(write_ms=10.0, points=5000)
    stats.wrote(write_ms=30.0, points=3000)
    stats.add(readings_written=8000)

    snap = stats.snapshot(interval=True)

    assert (snap["write_ms_max"], snap["batch_points_mean"]) == (30.0, 4000.0)
    assert snap["readings_per_s"] > 0
    assert stats.snapshot()["batch_points_mean"] == 0.0


def test_a_share_group_makes_ingest_subscribe_to_a_shared_subscription(settings: CloudSettings) -> None:
    shared = settings.model_copy(update={"share_group": "ingest"})
    assert data_subscription(shared) == f"$share/ingest/sr/v1/{settings.org_filter}/+/data/+"
    assert data_subscription(settings) == f"sr/v1/{settings.org_filter}/+/data/+"


@pytest.mark.parametrize("bad", ["Bad", "a/b", "+", ""])
def test_an_invalid_share_group_is_refused_naming_the_setting(bad: str) -> None:
    with pytest.raises(ValueError, match="share_group"):
        CloudSettings(share_group=bad)
