"""Writing a received stream to a file while hashing it, without passing through the page cache.

A restore can be larger than the machine's memory. Written the usual way, every byte first
lands in the page cache, which costs each fresh page a fault (on VMs that hand freed memory
back to the host, the largest share of a restore's time) and evicts whatever the host had
cached. :class:`HashingFileWriter` opens the file with ``O_DIRECT`` where the platform and the
filesystem allow it, and falls back to ordinary writes where they do not (tmpfs, macOS, a
filesystem that refuses the first direct write).

The bytes are gathered into a few page-aligned blocks (as ``O_DIRECT`` requires); each full
block is hashed (SHA-512) on one thread and written at its offset on another while the next
block is being filled — ``hashlib`` and ``os.pwrite`` release the GIL, so the caller's receive
loop, the hash and the disk run side by side. A block is reused only once both are done, so
memory is ``blocks * block_size`` whatever the file's size. The last, partial block is written
padded to the alignment and the file truncated to its true length.
"""

import contextlib
import errno
import fcntl
import hashlib
import mmap
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

BLOCK_SIZE = 4 * 1024 * 1024
BLOCKS = 4
ALIGNMENT = 4096  # the largest logical block size O_DIRECT asks to be aligned to in practice
O_DIRECT: int = getattr(os, "O_DIRECT", 0)


class HashingFileWriter:
    """Create (or truncate; with ``exclusive``, only create) ``path`` with mode 0600 and
    write what :meth:`write` is given."""

    def __init__(
        self,
        path: Path,
        *,
        block_size: int = BLOCK_SIZE,
        blocks: int = BLOCKS,
        direct: bool = True,
        exclusive: bool = False,
    ) -> None:
        if block_size % ALIGNMENT or blocks < 1:
            raise ValueError("block_size must be a multiple of 4096 and blocks at least 1")
        self._block_size = block_size
        self._maps = [mmap.mmap(-1, block_size) for _ in range(blocks)]
        self._views = [memoryview(block) for block in self._maps]
        self._free = deque(range(blocks))
        self._in_flight: deque[tuple[int, Future[None], Future[None]]] = deque()
        self._digest = hashlib.sha512()
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="ssbg-sha512")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="ssbg-write")
        self._current: int | None = None
        self._filled = 0
        self._offset = 0  # where the block being filled starts in the file
        self.received = 0
        # Last: nothing above can fail once the file exists (the threads start on first use).
        flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
        self._fd, self.direct = _open(path, flags, direct=direct and O_DIRECT != 0)

    def write(self, piece: bytes) -> int:
        """Take ``piece``; return how many bytes were handed on to the disk by this call."""
        handed = 0
        view = memoryview(piece)
        while view:
            block = self._block()
            take = min(len(view), self._block_size - self._filled)
            self._views[block][self._filled : self._filled + take] = view[:take]
            self._filled += take
            self.received += take
            view = view[take:]
            if self._filled == self._block_size:
                handed += self._hand_on()
        return handed

    def finish(self) -> tuple[int, str]:
        """Write what is left, wait for the disk, set the true length and fsync.

        Returns (bytes handed on by this call, SHA-512 hex of everything written)."""
        handed = self._hand_on() if self._filled else 0
        while self._in_flight:
            self._settle_oldest()
        os.ftruncate(self._fd, self.received)  # drops the last block's alignment padding
        os.fsync(self._fd)
        return handed, self._digest.hexdigest()

    def close(self) -> None:
        """Stop the threads (after their current block) and release the file and the blocks."""
        self._hasher.shutdown(wait=True, cancel_futures=True)
        self._writer.shutdown(wait=True, cancel_futures=True)
        os.close(self._fd)
        for view in self._views:
            view.release()
        for block in self._maps:
            with contextlib.suppress(BufferError):  # a slice still referenced: left to the GC
                block.close()

    def __enter__(self) -> "HashingFileWriter":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _block(self) -> int:
        if self._current is None:
            if not self._free:
                self._settle_oldest()
            self._current = self._free.popleft()
        return self._current

    def _hand_on(self) -> int:
        block, length = self._block(), self._filled
        view = self._views[block]
        size = -(-length // ALIGNMENT) * ALIGNMENT if self.direct else length
        view[length:size] = bytes(size - length)
        hashed = self._hasher.submit(self._digest.update, view[:length])
        written = self._writer.submit(self._pwrite, view[:size], self._offset)
        self._in_flight.append((block, hashed, written))
        self._current, self._filled = None, 0
        self._offset += length
        return length

    def _settle_oldest(self) -> None:
        block, hashed, written = self._in_flight.popleft()
        hashed.result()
        written.result()  # an OSError of the disk (ENOSPC, EIO) surfaces here
        self._free.append(block)

    def _pwrite(self, data: memoryview, offset: int) -> None:
        while data:
            try:
                count = os.pwrite(self._fd, data, offset)
            except OSError as error:
                if not (self.direct and error.errno == errno.EINVAL):
                    raise
                self._stop_direct()  # the filesystem accepted O_DIRECT at open, not on write
                continue
            data, offset = data[count:], offset + count

    def _stop_direct(self) -> None:
        flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
        fcntl.fcntl(self._fd, fcntl.F_SETFL, flags & ~O_DIRECT)
        self.direct = False


def _open(path: Path, flags: int, *, direct: bool) -> tuple[int, bool]:
    """The file descriptor, mode 0600, and whether it is open with ``O_DIRECT``."""
    fd = None
    if direct:
        try:
            fd = os.open(path, flags | O_DIRECT, 0o600)
        except OSError as error:
            if error.errno != errno.EINVAL:  # EINVAL: this filesystem has no direct I/O
                raise
    if fd is None:
        fd, direct = os.open(path, flags, 0o600), False
    os.fchmod(fd, 0o600)  # an earlier file at ``path`` may have had looser permissions
    return fd, direct
