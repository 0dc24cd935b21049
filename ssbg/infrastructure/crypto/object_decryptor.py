"""Push-style decryption of a ``data.enc`` stream of either format version, verifying as it
goes — the one decryption path of restores, verification and ``ssbg recover``."""

from collections.abc import Iterable
from uuid import UUID

from ssbg.domain.errors import IntegrityFailure
from ssbg.infrastructure.crypto.object_format import (
    DATA_HEADER_MAX_BYTES,
    DATA_HEADER_MIN_BYTES,
    FRAMED_FORMAT_VERSION,
    TAG_BYTES,
    DekResolver,
    ObjectHeader,
    SegmentOpener,
)
from ssbg.infrastructure.crypto.object_format_v2 import FRAME, FramedSegmentDecoder


def full_segment_bytes(segment_size: int, format_version: int) -> int:
    """What a full segment occupies in ``data.enc``: ``S + 16``, or ``S + 21`` for a raw
    segment of version 2 (its frame). Reading chunks of this size after the header keeps
    uncompressed segments aligned, so they are opened in place."""
    frame = FRAME.size if format_version == FRAMED_FORMAT_VERSION else 0
    return segment_size + TAG_BYTES + frame


class ObjectDecryptor:
    """Push-style decryption of a ``data.enc`` stream, verifying as it goes.

    ``feed`` returns the plaintext of every segment that is now known *not* to be the last
    one; ``finish`` authenticates the final segment (with the last-segment flag) and returns
    its plaintext, or raises ``IntegrityFailure`` — so a caller that releases plaintext only
    after ``finish`` returns never releases a truncated object.

    Every segment ``feed`` returns is authenticated before ``feed`` returns. For a version 2
    object, compressed segments are decompressed as the returned iterable is *iterated*
    (:class:`~ssbg.infrastructure.crypto.object_format_v2.Plaintexts`), one at a time, so
    memory stays bounded whatever the compression ratio: iterate it on a worker thread.

    Memory: one segment buffer and at most one chunk held. Chunks of a version 1 object that
    start on segment boundaries (see :meth:`ObjectHeader.encoded_length`) are opened in
    place, without copying.

    ``resolve_dek`` receives the parsed header and returns the DEK (typically by unwrapping
    ``dek.wrapped`` after checking the header names the expected backup and key version).
    """

    def __init__(
        self,
        resolve_dek: DekResolver,
        *,
        expected_backup_id: UUID | None,
        expected_segment_size: int | None = None,
        expected_format_version: int | None = None,
    ) -> None:
        self._resolve_dek = resolve_dek
        self._expected_backup_id = expected_backup_id
        # The gateway knows the segment size and format version from the (sealed) metadata:
        # a header that says otherwise is refused before any buffer is sized from it.
        self._expected_segment_size = expected_segment_size
        self._expected_format_version = expected_format_version
        self._header_bytes = bytearray()  # until the header is parsed
        self._opener: SegmentOpener | None = None
        self._framed: FramedSegmentDecoder | None = None  # format version 2
        # A segment arriving whole inside an immutable chunk is opened from a view of that
        # chunk (``_held`` until more data shows it is not the last); one that straddles
        # chunks is gathered in ``_segment``, allocated once and reused. No per-segment
        # copies: fresh 1 MiB allocations cost more than AES-GCM itself here.
        self._held: tuple[bytes, int] | None = None
        self._segment = bytearray()
        self._filled = 0
        self._index = 0
        self._plaintext_bytes = 0
        self.header: ObjectHeader | None = None

    @property
    def plaintext_bytes(self) -> int:
        """Plaintext bytes of the segments authenticated so far."""
        if self._framed is not None:
            return self._framed.plaintext_bytes
        return self._plaintext_bytes

    @property
    def stored_bytes(self) -> int:
        """Bytes of the segments' bodies as stored (compressed or raw), without the header,
        frames and tags: the backup's ``stored_size``."""
        if self._framed is not None:
            return self._framed.stored_bytes
        return self._plaintext_bytes

    def feed(self, chunk: bytes | memoryview) -> Iterable[bytes]:
        if self._opener is None:
            self._header_bytes += chunk
            if not self._start():
                return []
            chunk, self._header_bytes = bytes(self._header_bytes), bytearray()
        if self._framed is not None:
            return self._framed.feed(chunk)
        out: list[bytes] = []
        segment, size = self._segment, len(self._segment)
        # Only an immutable chunk is held: a caller may reuse a memoryview's buffer.
        whole = chunk if isinstance(chunk, bytes) else None
        with memoryview(chunk) as data:
            offset, total = 0, len(data)
            while offset < total:
                # A full segment is non-final only if at least one more byte follows it.
                if self._held is not None:
                    out.append(self._open_held(last=False))
                elif self._filled == size:
                    out.append(self._open_filled(last=False))
                if whole is not None and self._filled == 0 and total - offset >= size:
                    self._held = (whole, offset)
                    offset += size
                    continue
                taken = min(size - self._filled, total - offset)
                segment[self._filled : self._filled + taken] = data[offset : offset + taken]
                self._filled += taken
                offset += taken
        return out

    def finish(self) -> bytes:
        if self._framed is not None:
            return self._framed.finish()
        if self._held is not None:
            return self._open_held(last=True)
        if self._opener is None or self._filled == 0:
            # No header, or no segment at all (truncated after the header).
            raise IntegrityFailure()
        return self._open_filled(last=True)

    def _start(self) -> bool:
        """Parse the header once it has arrived; what follows it stays in ``_header_bytes``."""
        buffered = self._header_bytes
        if len(buffered) < DATA_HEADER_MIN_BYTES:
            return False
        declared = ObjectHeader.declared_length(buffered)
        if len(buffered) < min(declared, DATA_HEADER_MAX_BYTES):
            return False
        header, length = ObjectHeader.parse(bytes(buffered[:DATA_HEADER_MAX_BYTES]))
        if self._expected_backup_id is not None and header.backup_id != self._expected_backup_id:
            raise IntegrityFailure()
        expected_size = self._expected_segment_size
        if expected_size is not None and header.segment_size != expected_size:
            raise IntegrityFailure()
        expected_version = self._expected_format_version
        if expected_version is not None and header.format_version != expected_version:
            raise IntegrityFailure()
        self._opener = SegmentOpener(self._resolve_dek(header), bytes(buffered[:length]))
        if header.framed:
            self._framed = FramedSegmentDecoder(self._opener, header)
        else:
            self._segment = bytearray(header.segment_size + TAG_BYTES)
        self.header = header
        del buffered[:length]
        return True

    def _open_held(self, *, last: bool) -> bytes:
        assert self._held is not None
        chunk, offset = self._held
        self._held = None
        with memoryview(chunk) as view, view[offset : offset + len(self._segment)] as sealed:
            return self._open(sealed, last)

    def _open_filled(self, *, last: bool) -> bytes:
        with memoryview(self._segment) as view, view[: self._filled] as sealed:
            plaintext = self._open(sealed, last)
        self._filled = 0
        return plaintext

    def _open(self, sealed: memoryview, last: bool) -> bytes:
        assert self._opener is not None
        plaintext = self._opener.open(self._index, sealed, last)
        self._index += 1
        self._plaintext_bytes += len(plaintext)
        return plaintext
