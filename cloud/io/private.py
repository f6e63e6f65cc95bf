"""Files that hold password and token hashes, or what people posted: the owner's alone.

Created 0600 in folders created 0700, whatever the umask (a plain `open()` under the usual 022
makes files others can read). An existing file loses any bit for group and others; an existing
folder is left as it is (it may be a volume another service traverses).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Create `path` and any missing parent 0700; an existing folder is not changed."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            folder.mkdir(mode=DIR_MODE)
            folder.chmod(DIR_MODE)  # mkdir's mode passes through the umask
    return path


def private_file(path: Path) -> Path:
    """Make sure `path` exists and only its owner may read or write it (its folder via
    `private_dir`).

    An existing file is changed by its path alone, never opened: closing any descriptor of a
    file drops every POSIX lock this process holds on it, and SQLite's locks are POSIX locks. A
    second engine on a database the process already has open (the alert store beside its
    outbox) would otherwise free the first one's locks, and a connection that then believes it
    is the last one deletes the -wal the others go on writing to: their commits vanish."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    except FileExistsError:
        current = path.stat().st_mode & 0o777
        if current & 0o077:
            path.chmod(current & ~0o077 & 0o700 or FILE_MODE)
        return path
    os.close(fd)  # a new file: nobody holds a lock on it yet
    return path
