"""The audit anchor's file in the key store (format in ``domain.audit_anchor``).

Two operations, both blocking (callers run them on a worker thread):

* :meth:`AnchorFile.read` — the file's bytes, or ``None`` when there is none;
* :meth:`AnchorFile.compare_and_swap` — replace the file only while it still holds the bytes
  the caller read, and decided to replace. The comparison and the write happen under an
  exclusive ``flock`` on a lock file beside it, so processes on one host, and replicas sharing
  the key store's volume, never interleave: a replica whose newer anchor landed first is never
  overwritten by one that read the older file (that one is told, reads again and decides
  again). The write is atomic: a temporary file (mode 0600) written and fsynced, renamed over
  the anchor, then the directory fsynced — a crash leaves the old anchor or the new one, never
  a torn file.

``flock`` needs a file system that honours it across the processes involved (local disks do;
so does NFSv4, where it is mapped to byte-range locks).
"""

import fcntl
import os
import secrets
from pathlib import Path

from ssbg.infrastructure.durable_files import fsync_directory
from ssbg.infrastructure.private_files import make_private_directories


class AnchorFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(f"{path.name}.lock")

    def read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def compare_and_swap(self, expected: bytes | None, content: bytes) -> bool:
        """Write ``content`` if the file still holds ``expected`` (``None``: no file); False,
        leaving it unchanged, if it does not. ``OSError`` when the key store cannot be
        written."""
        self._ensure_directory()
        lock = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.read() != expected:
                return False
            self._replace(content)
            return True
        finally:
            os.close(lock)  # releases the lock

    def _ensure_directory(self) -> None:
        directory = self.path.parent
        if not directory.exists():
            make_private_directories(directory)

    def _replace(self, content: bytes) -> None:
        temporary = self.path.with_name(f".{self.path.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        fsync_directory(self.path.parent)
