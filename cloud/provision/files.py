"""Writing secrets and generated files: atomically, 0600 files in 0700 folders, only when changed."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def ensure_dir(path: Path) -> Path:
    """Create `path` 0700 (parents too); an existing folder loses any read or write bit for
    group and others, but keeps a traverse-only bit (0711) that lets the broker's user reach
    its own subfolder (`broker.py`)."""
    if not path.is_dir():
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        path.chmod(DIR_MODE)  # mkdir's mode is filtered by the umask
        return path
    mode = path.stat().st_mode & 0o777
    if mode & 0o066:
        path.chmod(mode & ~0o066)
    return path


def write_private(path: Path, data: str | bytes, *, owner: tuple[int, int] | None = None) -> bool:
    """Write `data` to `path` with mode 0600, atomically; False when the file already held it.

    A reader (mosquitto on SIGHUP) never sees a half-written file: the text goes to a temp file
    in the same folder, which is then renamed over the old one.
    """
    raw = data.encode() if isinstance(data, str) else data
    ensure_dir(path.parent)
    with contextlib.suppress(FileNotFoundError):
        if path.read_bytes() == raw:
            path.chmod(FILE_MODE)
            if owner is not None:
                os.chown(path, *owner)
            return False
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        Path(tmp).chmod(FILE_MODE)
        if owner is not None:
            os.chown(tmp, *owner)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
