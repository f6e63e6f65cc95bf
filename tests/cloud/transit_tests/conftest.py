"""Fixtures for the transit tests: a database holding the Prato feed, copied for each test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support_transit import OPERATOR, PRATO_AREA, prato_feed_zip

from cloud.transit.store import TransitStore


@pytest.fixture(scope="session")
def prato_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with the Prato feed imported once (closed, so that it is whole on disk)."""
    path = tmp_path_factory.mktemp("prato-db") / "transit.db"
    store = TransitStore.open(f"sqlite:///{path}")
    store.import_feed(prato_feed_zip(), operator=OPERATOR, area=PRATO_AREA)
    store.close()
    return path


@pytest.fixture
def prato_store(prato_db: Path, tmp_path: Path) -> Iterator[TransitStore]:
    """A store of this test's own, holding the Prato feed as version 1."""
    copy = tmp_path / "transit.db"
    shutil.copy(prato_db, copy)
    store = TransitStore.open(f"sqlite:///{copy}")
    yield store
    store.close()
