"""What SPEC §13.3 asks of the files the gateway creates: 0600, in folders 0700."""

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def wrong_modes_under(root: Path) -> dict[str, str]:
    """Every file under ``root`` that is not 0600 and every folder (``root`` too) not 0700."""
    wrong = {}
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode != (0o700 if path.is_dir() else 0o600):
            wrong[str(path)] = oct(mode)
    return wrong


@contextmanager
def usual_umask() -> Iterator[None]:
    """The umask most processes start with (022), whatever the test run's own is: modes must
    come from the code that creates files, not from a umask someone else chose."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)
