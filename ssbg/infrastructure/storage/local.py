"""Object store on a local filesystem (the embedded default).

Objects are 0600 and every folder the store creates (its root included) 0700.

Durability: each object is written under a temporary name in its final directory, fsynced,
renamed into place, and the directory fsynced — so after ``open_writer`` exits the object
survives a crash, and before that no reader ever sees a partial object.
"""

import asyncio
import contextlib
import os
import secrets
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ssbg.domain.errors import StorageUnavailable
from ssbg.infrastructure.crypto.lanes import Lane
from ssbg.infrastructure.durable_files import fsync_directory
from ssbg.infrastructure.private_files import PRIVATE_FILE_MODE, make_private_directories
from ssbg.infrastructure.storage.errors import ObjectMissing

_TEMP_SUFFIX = ".partial"
_READ_AHEAD = 2


class _LocalWriter:
    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle

    async def write(self, chunk: bytes) -> None:
        try:
            await asyncio.to_thread(self._write, chunk)
        except OSError:
            raise StorageUnavailable() from None

    def _write(self, chunk: bytes) -> None:
        self._handle.write(chunk)
        # Writing on into a file that someone unlinked (its directory was removed or replaced)
        # only fills an orphaned inode: fail now rather than at the final rename.
        if os.fstat(self._handle.fileno()).st_nlink == 0:
            raise OSError("the object's temporary file was removed")


class LocalObjectStore:
    backend_name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        relative = PurePosixPath(key)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise ValueError(f"invalid object key {key!r}")
        return self.root.joinpath(*relative.parts)

    @asynccontextmanager
    async def open_writer(self, key: str) -> AsyncIterator[_LocalWriter]:
        final = self._path(key)
        temporary = final.with_name(f".{final.name}.{secrets.token_hex(8)}{_TEMP_SUFFIX}")
        try:
            handle = await asyncio.to_thread(self._open_temporary, temporary)
        except OSError:
            raise StorageUnavailable() from None
        try:
            yield _LocalWriter(handle)
            await asyncio.to_thread(self._commit, handle, temporary, final)
        except BaseException as exc:
            await asyncio.to_thread(self._discard, handle, temporary)
            if isinstance(exc, OSError):
                raise StorageUnavailable() from None
            raise

    @staticmethod
    def _open_temporary(temporary: Path) -> BinaryIO:
        make_private_directories(temporary.parent)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        return os.fdopen(fd, "wb")

    @staticmethod
    def _commit(handle: BinaryIO, temporary: Path, final: Path) -> None:
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        os.replace(temporary, final)
        fsync_directory(final.parent)

    @staticmethod
    def _discard(handle: BinaryIO, temporary: Path) -> None:
        with contextlib.suppress(OSError):
            handle.close()
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)

    async def put_bytes(self, key: str, data: bytes) -> None:
        async with self.open_writer(key) as writer:
            await writer.write(data)

    async def read_stream(
        self, key: str, chunk_size: int, *, first_chunk_size: int | None = None
    ) -> AsyncIterator[bytes]:
        # Reads run on a lane of their own, ``_READ_AHEAD`` chunks ahead of the consumer: one
        # thread hand-over per chunk instead of a ``to_thread`` round trip, and the next chunk
        # is read while the consumer works on this one.
        path = self._path(key)
        reader = Lane("ssbg-read")
        try:
            try:
                handle: BinaryIO = await reader.submit(path.open, "rb")
            except FileNotFoundError:
                raise ObjectMissing(key) from None
            except OSError:
                raise StorageUnavailable() from None
            sizes = [first_chunk_size or chunk_size] + [chunk_size] * (_READ_AHEAD - 1)
            ahead = deque(reader.submit(handle.read, size) for size in sizes)
            try:
                while True:
                    try:
                        chunk = await ahead.popleft()
                    except OSError:
                        raise StorageUnavailable() from None
                    if not chunk:
                        return
                    ahead.append(reader.submit(handle.read, chunk_size))
                    yield chunk
            finally:
                for pending in ahead:
                    pending.cancel()
                reader.submit(handle.close)  # after the reads already queued: lanes keep order
        finally:
            reader.close()

    async def read_bytes(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        except OSError:
            raise StorageUnavailable() from None

    async def size(self, key: str) -> int:
        try:
            return (await asyncio.to_thread(self._path(key).stat)).st_size
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        except OSError:
            raise StorageUnavailable() from None

    async def exists(self, key: str) -> bool:
        try:
            return await asyncio.to_thread(self._path(key).is_file)
        except OSError:
            raise StorageUnavailable() from None

    async def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            await asyncio.to_thread(self._delete, path)
        except OSError:
            raise StorageUnavailable() from None

    @staticmethod
    def _delete(path: Path) -> None:
        path.unlink(missing_ok=True)
        if path.parent.exists():
            fsync_directory(path.parent)

    async def discard_prefix(self, prefix: str) -> None:
        directory = self._path(prefix.rstrip("/"))
        try:
            await asyncio.to_thread(self._discard_tree, directory)
        except OSError:
            raise StorageUnavailable() from None

    def _discard_tree(self, directory: Path) -> None:
        if not directory.exists():
            return
        if not directory.is_dir():
            raise NotADirectoryError(str(directory))
        for child in sorted(directory.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if child.is_dir() and not child.is_symlink():
                child.rmdir()
            else:
                child.unlink(missing_ok=True)
        directory.rmdir()
        fsync_directory(directory.parent)

    async def check_writable(self) -> None:
        key = f"health/probe-{secrets.token_hex(8)}"
        await self.put_bytes(key, b"ssbg-health-probe")
        if await self.read_bytes(key) != b"ssbg-health-probe":
            raise StorageUnavailable("The object store returned different bytes than written.")
        await self.delete(key)

    async def close(self) -> None:
        return None
