"""The ingest service's wiring: a `sitroom cloud ingest` process from its settings."""

from __future__ import annotations

from cloud.core.settings import CloudSettings
from cloud.ingest.consumer import Ingest


def build_ingest(settings: CloudSettings) -> Ingest:
    return Ingest(settings)
