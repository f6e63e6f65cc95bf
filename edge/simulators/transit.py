"""The project's own Prato bus network (GTFS text files in `prato_bus/`), zipped at run time."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from pathlib import Path

PRATO_BUS_DIR = Path(__file__).resolve().parent / "prato_bus"
PRATO_OPERATOR = "autolinee-toscane"  # the org of the demo's buses (firmware_configs/gw-fleet-at.yaml)


def zip_folder(folder: Path, replace: Mapping[str, bytes | None] | None = None) -> bytes:
    """The folder's `.txt` files as a GTFS zip; `replace` swaps a file's bytes (None drops it)."""
    files = {p.name: p.read_bytes() for p in sorted(folder.glob("*.txt"))}
    for name, content in (replace or {}).items():
        if content is None:
            files.pop(name, None)
        else:
            files[name] = content
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return out.getvalue()


def prato_feed_zip(replace: Mapping[str, bytes | None] | None = None) -> bytes:
    return zip_folder(PRATO_BUS_DIR, replace)
