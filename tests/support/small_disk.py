"""A small disk for the fault matrix's "disk full" cells: a tmpfs of a given size mounted at a
directory, that the test can fill (leaving only N bytes free) and free again.

Mounting needs root (or ``CAP_SYS_ADMIN``); CI runs as root. Where the process cannot mount,
the cell FAILS, naming the cause — a skipped cell would let the matrix lose a row without
anyone noticing. A developer without root opts out explicitly with ``SSBG_TEST_NO_MOUNT=1``:
then the cells are skipped, saying so.

The mount is made in the test process's own mount namespace (the host's, as tests run): a
PostgreSQL server on the same machine sees it too, which the tablespace cell needs. It is
always unmounted on the way out, lazily if something still holds it open.
"""

import os
import pwd
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

OPT_OUT_ENV = "SSBG_TEST_NO_MOUNT"
_FILLER_PREFIX = ".ssbg-test-filler-"


def cannot_use_small_disk(reason: str) -> NoReturn:
    if os.environ.get(OPT_OUT_ENV) == "1":
        pytest.skip(f"{OPT_OUT_ENV}=1: this cell needs a mounted tmpfs ({reason})")
    pytest.fail(
        f"The disk-full cells mount a small tmpfs and cannot here: {reason}. Run them as root "
        f"(CI does), or set {OPT_OUT_ENV}=1 to skip them knowingly.",
        pytrace=False,
    )


class SmallDisk:
    """A mounted tmpfs of ``size`` bytes at ``path``."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self._fillers: list[Path] = []

    def available(self) -> int:
        stat = os.statvfs(self.path)
        return stat.f_bavail * stat.f_frsize

    def fill(self, leave: int = 0) -> None:
        """Take all the free space but ``leave`` bytes (rounded down to a page) with a filler
        file. Call again to take what was freed since."""
        stat = os.statvfs(self.path)
        page = stat.f_frsize
        take = stat.f_bavail * page - leave
        if take <= 0:
            return
        take = -(-take // page) * page  # whole pages: tmpfs allocates by the page
        filler = self.path / f"{_FILLER_PREFIX}{len(self._fillers)}"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._fillers.append(filler)
        try:
            os.posix_fallocate(fd, 0, take)
        finally:
            os.close(fd)
        assert self.available() <= leave, (self.available(), leave)

    def free(self) -> None:
        """Remove every filler file: the space they took is free again."""
        for filler in self._fillers:
            filler.unlink(missing_ok=True)
        self._fillers.clear()


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


@contextmanager
def small_disk(
    path: Path, size: int, *, owner: str | None = None, mode: int = 0o700
) -> Iterator[SmallDisk]:
    """Mount a tmpfs of ``size`` bytes at ``path`` (created if missing), its root owned by
    ``owner`` (a user name; the caller's user by default) with ``mode``; unmount it on exit."""
    if os.geteuid() != 0:
        cannot_use_small_disk(f"the tests run as uid {os.geteuid()}, not root")
    options = [f"size={size}", f"mode={mode:o}"]
    if owner is not None:
        try:
            user = pwd.getpwnam(owner)
        except KeyError:
            cannot_use_small_disk(f"there is no user {owner!r} to own the mount")
        options += [f"uid={user.pw_uid}", f"gid={user.pw_gid}"]
    path.mkdir(parents=True, exist_ok=True)
    mounted = _run("mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(path))
    if mounted.returncode != 0:
        cannot_use_small_disk(f"mount -t tmpfs failed: {mounted.stderr.strip()}")
    try:
        yield SmallDisk(path, size)
    finally:
        if _run("umount", str(path)).returncode != 0:
            lazily = _run("umount", "--lazy", str(path))
            assert lazily.returncode == 0, f"could not unmount {path}: {lazily.stderr}"


@contextmanager
def mount_point() -> Iterator[Path]:
    """An empty folder in the system's temporary directory, removed afterwards. Unlike
    pytest's ``tmp_path`` (0700, root's), other users reach a tmpfs mounted there, whose own
    root's owner and mode hide the folder's."""
    path = Path(tempfile.mkdtemp(prefix="ssbg-small-disk-"))
    try:
        yield path
    finally:
        path.rmdir()
