"""Streaming decryption of a ``data.enc`` object, pipelined over two cores.

Two uses, one pipeline:

* :func:`verify_object` — the decrypt-and-verify pass before a restore is allowed: every
  segment is authenticated and decrypted (and decompressed), and SHA-512 of the ciphertext
  and of the plaintext are computed, while the plaintext is discarded.
* :func:`decrypt_object` — the download: plaintext segments are yielded in order as they are
  authenticated. The final segment (which carries the last-segment flag) is yielded only after
  it authenticates, so a truncated object raises before its end is ever released.

The event loop only hands chunks from the store to worker lanes, which run in order: ``open``
runs :class:`ObjectDecryptor` (AES-256-GCM), ``cipher`` and ``plain`` hash; when verifying, the
open lane hands the plaintext straight to the plain lane, which also decompresses a compressed
(version 2) object's segments as it hashes them; when downloading, an ``expand`` lane
decompresses them, a few at a time. At most ``in_flight`` chunks wait per lane, so memory is a
few segments whatever the object size and its compression ratio. Every failure to parse,
authenticate or decompress is :class:`~ssbg.domain.errors.IntegrityFailure`.
"""

import asyncio
import hashlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ssbg.infrastructure.crypto.lanes import Lane
from ssbg.infrastructure.crypto.object_decryptor import ObjectDecryptor

DEFAULT_IN_FLIGHT = 4
# Plaintext bytes the expand lane decompresses per job (at least one segment).
EXPAND_BATCH_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class VerifiedObject:
    ciphertext_bytes: int
    plaintext_bytes: int
    checksum_ciphertext: str
    checksum_plaintext: str
    stored_bytes: int  # the segments' bodies as stored: the backup's stored_size


async def _drain(pending: "deque[asyncio.Future[None]]", keep: int) -> None:
    while len(pending) > keep:
        await pending.popleft()


async def verify_object(
    chunks: AsyncIterator[bytes],
    decryptor: ObjectDecryptor,
    *,
    in_flight: int = DEFAULT_IN_FLIGHT,
) -> VerifiedObject:
    """Authenticate and decrypt every segment, hashing both sides; discard the plaintext."""
    open_lane, cipher_lane, plain_lane = (
        Lane("ssbg-open"),
        Lane("ssbg-sha-cipher"),
        Lane("ssbg-sha-plain"),
    )
    cipher_hash, plain_hash = hashlib.sha512(), hashlib.sha512()
    pending: deque[asyncio.Future[None]] = deque()
    ciphertext_bytes = 0

    def hash_plain(segments: Iterable[bytes]) -> None:
        for segment in segments:
            plain_hash.update(segment)

    # The open lane hands the plaintext straight to the plain lane: it never travels back
    # through the event loop, which only awaits the last step of each chunk.
    def open_then_hash(chunk: bytes, hashed: "asyncio.Future[None]") -> None:
        plain_lane.enqueue(hashed, hash_plain, decryptor.feed(chunk))

    def finish_then_hash(hashed: "asyncio.Future[None]") -> None:
        plain_lane.enqueue(hashed, hash_plain, [decryptor.finish()])

    def open_chunk(fn: Callable[..., None], *args: Any) -> None:
        hashed = plain_lane.future()
        pending.append(open_lane.submit(fn, *args, hashed))  # raises IntegrityFailure first
        pending.append(hashed)

    try:
        async for chunk in chunks:
            ciphertext_bytes += len(chunk)
            pending.append(cipher_lane.submit(cipher_hash.update, chunk))
            open_chunk(open_then_hash, chunk)
            await _drain(pending, 3 * in_flight)
        open_chunk(finish_then_hash)
        await _drain(pending, 0)
    finally:
        for future in pending:
            future.cancel()
        for lane in (open_lane, cipher_lane, plain_lane):
            lane.close()
    return VerifiedObject(
        ciphertext_bytes=ciphertext_bytes,
        plaintext_bytes=decryptor.plaintext_bytes,
        checksum_ciphertext=cipher_hash.hexdigest(),
        checksum_plaintext=plain_hash.hexdigest(),
        stored_bytes=decryptor.stored_bytes,
    )


async def decrypt_object(
    chunks: AsyncIterator[bytes],
    decryptor: ObjectDecryptor,
    *,
    in_flight: int = DEFAULT_IN_FLIGHT,
) -> AsyncIterator[bytes]:
    """Yield the plaintext in order; raise ``IntegrityFailure`` at the first bad segment."""
    lane, expand_lane = Lane("ssbg-open"), Lane("ssbg-expand")
    opening: deque[asyncio.Future[Iterable[bytes]]] = deque()
    try:
        async for chunk in chunks:
            opening.append(lane.submit(decryptor.feed, chunk))
            while len(opening) > in_flight:
                async for segment in _expanded(await opening.popleft(), expand_lane):
                    yield segment
        while opening:
            async for segment in _expanded(await opening.popleft(), expand_lane):
                yield segment
        yield await lane.submit(decryptor.finish)
    finally:
        for future in opening:
            future.cancel()
        lane.close()
        expand_lane.close()


async def _expanded(segments: Iterable[bytes], lane: Lane) -> AsyncIterator[bytes]:
    """``segments`` as the decryptor returned them: a list is plaintext already (format
    version 1); anything else decompresses as it is iterated, which ``lane`` does, a batch at
    a time, so the event loop never decompresses and memory holds one batch."""
    if isinstance(segments, list):
        for segment in segments:
            yield segment
        return
    pending = iter(segments)
    while batch := await lane.submit(_take, pending, EXPAND_BATCH_BYTES):
        for segment in batch:
            yield segment


def _take(segments: Iterator[bytes], budget: int) -> list[bytes]:
    """The next segments of ``segments``, until ``budget`` bytes or the end."""
    batch: list[bytes] = []
    for segment in segments:
        batch.append(segment)
        budget -= len(segment)
        if budget <= 0:
            break
    return batch
