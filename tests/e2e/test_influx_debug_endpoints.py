"""The InfluxDB that tests and the demo start (cloud/dev/servers.py) serves no profiles.

Issue 18 point 7. Debian's InfluxDB 1.6.7 has one switch here, `[http] pprof-enabled`: off,
`/debug/pprof/*` (the command line, heap, goroutines, CPU profiles) answers 404. `/debug/vars`
(runtime statistics, database names, series counts) and `/debug/requests` have no switch in 1.6
(measured; 1.8 can put them behind the admin's credentials, docker-compose.yml does): the server
binds 127.0.0.1 only.
"""

from __future__ import annotations

import httpx
import pytest

from cloud.dev.servers import Influxd

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("path", ["/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap"])
def test_our_influxd_serves_no_profiles(influxd: Influxd, path: str) -> None:
    response = httpx.get(f"{influxd.url}{path}", timeout=10, trust_env=False)

    assert response.status_code == 404


def test_our_influxd_listens_on_loopback_only(influxd: Influxd) -> None:
    config = influxd.config_path.read_text()

    assert f'bind-address = "127.0.0.1:{influxd.port}"' in config
    assert 'bind-address = "127.0.0.1:' in config.split("[meta]")[0]  # the RPC service too
    assert "pprof-enabled = false" in config
