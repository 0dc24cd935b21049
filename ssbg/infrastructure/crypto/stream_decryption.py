"""Streaming decryption of a ``data.enc`` object, pipelined over two cores.

Two uses, one pipeline:

* :func:`verify_object` — the decrypt-and-verify pass before a restore is allowed: every
  segment is authenticated and decrypted, and SHA-512 of the ciphertext and of the plaintext
  are computed, while the plaintext is discarded.
* :func:`decrypt_object` — the download: plaintext segments are yielded in order as they are
  authenticated. The final segment (which carries the last-segment flag) is yielded only after
  it authenticates, so a truncated object raises before its end is ever released.

The event loop only reads chunks from the store; on worker lanes, in order, ``open`` runs
:class:`ObjectDecryptor` (AES-256-GCM), ``cipher`` and ``plain`` hash. At most ``in_flight``
chunks wait per lane, so memory is a few segments whatever the object size. Every failure to
parse or authenticate is :class:`~ssbg.domain.errors.IntegrityFailure`.
"""

import asyncio
import hashlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ssbg.infrastructure.crypto.lanes import Lane
from ssbg.infrastructure.crypto.object_format import ObjectDecryptor

DEFAULT_IN_FLIGHT = 4


@dataclass(frozen=True, slots=True)
class VerifiedObject:
    ciphertext_bytes: int
    plaintext_bytes: int
    checksum_ciphertext: str
    checksum_plaintext: str


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
    hashing: deque[asyncio.Future[None]] = deque()
    opening: deque[asyncio.Future[list[bytes]]] = deque()
    ciphertext_bytes = 0

    def hash_plain(segments: list[bytes]) -> None:
        for segment in segments:
            plain_hash.update(segment)

    async def settle_oldest() -> None:
        segments = await opening.popleft()
        if segments:
            hashing.append(plain_lane.submit(hash_plain, segments))

    try:
        async for chunk in chunks:
            ciphertext_bytes += len(chunk)
            hashing.append(cipher_lane.submit(cipher_hash.update, chunk))
            opening.append(open_lane.submit(decryptor.feed, chunk))
            while len(opening) > in_flight:
                await settle_oldest()
            await _drain(hashing, in_flight)
        while opening:
            await settle_oldest()
        last = await open_lane.submit(decryptor.finish)
        hashing.append(plain_lane.submit(hash_plain, [last]))
        await _drain(hashing, 0)
    finally:
        for opened in opening:
            opened.cancel()
        for hashed in hashing:
            hashed.cancel()
        for lane in (open_lane, cipher_lane, plain_lane):
            lane.close()
    return VerifiedObject(
        ciphertext_bytes=ciphertext_bytes,
        plaintext_bytes=decryptor.plaintext_bytes,
        checksum_ciphertext=cipher_hash.hexdigest(),
        checksum_plaintext=plain_hash.hexdigest(),
    )


async def decrypt_object(
    chunks: AsyncIterator[bytes],
    decryptor: ObjectDecryptor,
    *,
    in_flight: int = DEFAULT_IN_FLIGHT,
) -> AsyncIterator[bytes]:
    """Yield the plaintext in order; raise ``IntegrityFailure`` at the first bad segment."""
    lane = Lane("ssbg-open")
    opening: deque[asyncio.Future[list[bytes]]] = deque()
    try:
        async for chunk in chunks:
            opening.append(lane.submit(decryptor.feed, chunk))
            while len(opening) > in_flight:
                for segment in await opening.popleft():
                    yield segment
        while opening:
            for segment in await opening.popleft():
                yield segment
        yield await lane.submit(decryptor.finish)
    finally:
        for future in opening:
            future.cancel()
        lane.close()
