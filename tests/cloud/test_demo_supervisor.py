"""The demo's supervisor and its children's lifetime, on real processes (cloud/dev/supervisor.py,
cloud/dev/processes.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cloud.dev.processes import ProcessId, start_ticks
from cloud.dev.supervisor import Backoff, RestartPolicy, ServiceSpec, Supervisor, describe_exit

from support import REPO, wait_until

SLEEPER = (sys.executable, "-c", "import time; time.sleep(60)")
QUICK = Backoff(first_s=0.05, max_s=0.2, reset_after_s=5.0, max_restarts=2)


def _gone(pid: int) -> bool:
    return start_ticks(pid) is None


def _parent(tmp_path: Path, body: str) -> subprocess.Popen[str]:
    """A Python process running `body`, which prints pids one per line as it learns them."""
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.Popen(
        [sys.executable, str(script)], cwd=REPO, stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )


def _kill(parent: subprocess.Popen[str]) -> None:
    parent.kill()  # SIGKILL: no code of the parent runs
    parent.wait()
    if parent.stdout is not None:
        parent.stdout.close()


def test_a_service_killed_is_restarted_after_a_backoff_and_counted() -> None:
    events: list[str] = []
    with Supervisor(backoff=QUICK, on_event=events.append) as sup:
        first = sup.start(ServiceSpec("sleeper", SLEEPER))
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: sup.restarts["sleeper"] == 1 and sup.is_running("sleeper"), 10, what="a restart")
        assert sup.pid("sleeper") != first
        assert sup.failed == {}
    assert any("killed by SIGKILL" in e for e in events), events
    assert any("sleeper restarted" in e for e in events), events


def test_a_service_that_keeps_failing_is_given_up_after_its_restarts_in_a_row() -> None:
    with Supervisor(backoff=QUICK) as sup:
        sup.start(ServiceSpec("broken", (sys.executable, "-c", "raise SystemExit(3)")))
        wait_until(lambda: sup.failed, 10, what="the service given up")
        assert sup.restarts["broken"] == QUICK.max_restarts
        assert "exit status 3" in sup.failed["broken"]
        assert "given up" in sup.failed["broken"]


def test_a_clean_exit_is_not_restarted_under_on_failure() -> None:
    with Supervisor(backoff=QUICK) as sup:
        sup.start(ServiceSpec("once", (sys.executable, "-c", "pass"), restart=RestartPolicy.ON_FAILURE))
        wait_until(lambda: sup.failed, 10, what="the exit noticed")
        assert sup.restarts["once"] == 0
        assert "not restarted (restart: on-failure)" in sup.failed["once"]


def test_a_stopped_service_is_not_restarted() -> None:
    with Supervisor(backoff=QUICK) as sup:
        pid = sup.start(ServiceSpec("sleeper", SLEEPER))
        sup.stop(["sleeper"])
        assert _gone(pid)
        assert not sup.is_running("sleeper")
        assert sup.restarts["sleeper"] == 0
        assert sup.failed == {}


def test_the_backoff_doubles_up_to_its_ceiling() -> None:
    b = Backoff(first_s=0.5, factor=2, max_s=3)
    assert [b.delay_s(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]


def test_an_exit_is_described_as_a_person_says_it() -> None:
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(2) == "exit status 2"


def test_a_recycled_pid_is_not_taken_for_the_process_recorded() -> None:
    me = ProcessId.of(os.getpid())
    assert me is not None
    assert me.is_alive
    assert not ProcessId(me.pid, me.start_ticks + 1).is_alive


@pytest.mark.timeout(60)
def test_services_and_their_restarts_die_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    parent = _parent(
        tmp_path,
        f"""
        import sys, time
        from cloud.dev.supervisor import Backoff, ServiceSpec, Supervisor
        sup = Supervisor(backoff=Backoff(first_s=0.05), on_start=lambda name, pid: print(pid, flush=True))
        sup.start(ServiceSpec("sleeper", {SLEEPER!r}))
        time.sleep(60)
        """,
    )
    assert parent.stdout is not None
    first = int(parent.stdout.readline())
    os.kill(first, signal.SIGKILL)  # the supervisor's thread forks the next one
    restarted = int(parent.stdout.readline())
    assert not _gone(restarted)
    _kill(parent)
    wait_until(lambda: _gone(restarted), 5, what=f"the restarted service {restarted} gone with its parent")


@pytest.mark.timeout(60)
def test_a_server_of_cloud_dev_servers_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    parent = _parent(
        tmp_path,
        f"""
        import time
        from pathlib import Path
        from cloud.dev.servers import Mosquitto
        broker = Mosquitto(Path({str(tmp_path / "broker")!r})).start()
        print(broker.proc.pid, flush=True)
        time.sleep(60)
        """,
    )
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    assert not _gone(pid)
    _kill(parent)
    wait_until(lambda: _gone(pid), 5, what=f"mosquitto {pid} gone with its parent")
