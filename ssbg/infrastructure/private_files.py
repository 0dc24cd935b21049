"""Files 0600 and folders 0700, wherever the configuration points them (SPEC §13.3).

The database, its WAL and the objects hold everything the gateway keeps; nobody but the
gateway's own user may read them, whether they live under the data directory or on volumes of
their own. Modes are given where each file and folder is created (a umask is process-wide and
belongs to whoever starts the process; the server commands set 077 as well). Folders that
already exist are left as they are: a parent such as ``/var/lib`` is not ours to change.
"""

import os
import stat
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIRECTORY_MODE = 0o700


def make_private_directories(directory: Path) -> None:
    """Create ``directory`` and every missing folder above it, each 0700.

    ``Path.mkdir(mode=…, parents=True)`` gives its mode to the last folder only: the parents
    it creates get the umask's default (0755 under the usual 022).
    """
    missing: list[Path] = []
    current = directory
    while not os.path.lexists(current):
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, PRIVATE_DIRECTORY_MODE)
        except FileExistsError:  # created meanwhile by another process: fine if a folder
            if not path.is_dir():
                raise


def make_private_file(path: Path) -> None:
    """Create ``path`` empty and 0600 if it does not exist; take group and other permissions
    away from one that does."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE)
    os.close(fd)
    restrict_existing_file(path)


def restrict_existing_file(path: Path) -> None:
    """Take group and other permissions away from ``path`` if it exists."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        path.chmod(mode & ~0o077)
