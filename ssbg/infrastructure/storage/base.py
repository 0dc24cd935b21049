"""The object-store port: what the services need from a place that keeps ciphertext.

Two adapters implement it: :class:`~ssbg.infrastructure.storage.local.LocalObjectStore` and
:class:`~ssbg.infrastructure.storage.s3.S3ObjectStore`. Each maps its library's failures to
:class:`~ssbg.domain.errors.StorageUnavailable` at its edge, so services never see ``OSError``
or ``botocore`` exceptions. Object keys are ``/``-separated relative names such as
``backups/<backup_id>/data.enc``.
"""

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class ObjectWriter(Protocol):
    async def write(self, chunk: bytes) -> None:
        """Append ``chunk``; raises ``StorageUnavailable``."""


class ObjectStore(Protocol):
    backend_name: str

    def open_writer(self, key: str) -> AbstractAsyncContextManager[ObjectWriter]:
        """A writer whose object becomes visible, durably, only when the block exits cleanly.

        On an exception inside the block the partial object is discarded and the exception
        propagates. Raises ``StorageUnavailable``.
        """
        ...

    async def put_bytes(self, key: str, data: bytes) -> None: ...

    def read_stream(
        self, key: str, chunk_size: int, *, first_chunk_size: int | None = None
    ) -> AsyncIterator[bytes]:
        """Yield the object in chunks of at most ``chunk_size`` bytes — the first of at most
        ``first_chunk_size`` if given (a reader that wants the chunks after a header aligned).

        Raises ``ObjectMissing`` if absent, ``StorageUnavailable`` if the store cannot answer.
        """
        ...

    async def read_bytes(self, key: str) -> bytes: ...

    async def size(self, key: str) -> int: ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Remove the object; deleting an absent object is not an error."""

    async def discard_prefix(self, prefix: str) -> None:
        """Remove every object under ``prefix`` (``backups/<id>/``) *and* every unfinished
        write there (temporary files, incomplete multipart uploads) — what a crashed or failed
        upload leaves behind. Absent objects are not an error; raises ``StorageUnavailable``."""

    async def check_writable(self) -> None:
        """Write, read back and delete a probe object; raises ``StorageUnavailable``."""

    async def close(self) -> None: ...
