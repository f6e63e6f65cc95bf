"""Hot reload of the rules file: new rules take over, unchanged ones keep their state, a broken
file is refused and the running rules stay."""

from __future__ import annotations

import os
from pathlib import Path

from cloud.core.settings import CloudSettings
from cloud.rules.engine import Engine, load_rules
from cloud.rules.service import RulesService

ONE = """
rules:
  - {rule: threshold, name: parking-full, kind: parking, field: occupancy_pct, above: 95}
  - {rule: seasonal, name: parking-unusual, kind: parking, field: occupied}
"""
TWO = """
rules:
  - {rule: threshold, name: parking-full, kind: parking, field: occupancy_pct, above: 90}
  - {rule: seasonal, name: parking-unusual, kind: parking, field: occupied}
  - {rule: flatline, name: stuck, kind: parking, field: occupied}
"""


def write(path: Path, text: str, bump_s: int) -> None:
    path.write_text(text)
    # A new mtime even within the file system's timestamp resolution.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + bump_s * 1_000_000_000))


def test_a_changed_rules_file_replaces_the_rules_and_keeps_unchanged_ones(
    tmp_path: Path, settings: CloudSettings
) -> None:
    path = tmp_path / "rules.yaml"
    write(path, ONE, 0)
    service = RulesService(settings, Engine(load_rules(path)), rules_path=path)
    before = {r.name: r for r in service.engine.rules}
    assert service.reload_if_changed() is False  # unchanged

    write(path, TWO, 10)
    assert service.reload_if_changed() is True
    after = {r.name: r for r in service.engine.rules}
    assert sorted(after) == ["parking-full", "parking-unusual", "stuck"]
    assert after["parking-unusual"] is before["parking-unusual"]  # its learnt state is kept
    assert after["parking-full"] is not before["parking-full"]  # its config changed

    write(path, "rules: [{rule: threshold, name: broken}]", 20)
    assert service.reload_if_changed() is False
    assert service.reload_errors == 1
    assert sorted(r.name for r in service.engine.rules) == ["parking-full", "parking-unusual", "stuck"]
