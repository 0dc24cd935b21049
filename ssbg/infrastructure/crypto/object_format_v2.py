"""Format version 2 of ``data.enc``: framed segments, each stored raw or zstd-compressed.

After the version 2 header (:class:`~ssbg.infrastructure.crypto.object_format.ObjectHeader`,
which names the compression), segment *i* is stored as::

    flag_i (1 byte) ‖ L_i (uint32 BE) ‖ sealed_i
    sealed_i = AES-256-GCM(DEK, nonce = N(i, last), body_i, aad = header ‖ flag_i ‖ L_i)

``flag`` 0x00: ``body`` is the plaintext segment; 0x01: ``body`` is one zstd frame that
declares the segment's size (allowed only when the header says zstd). ``L`` is the length of
the sealed bytes (``|body| + 16``). The nonce is version 1's, so reordering, truncation and
appending fail exactly as in version 1; the frame is in the associated data, so changing a
flag or a length fails the tag too — every byte of the object is authenticated.

As in version 1, every segment but the last holds exactly ``segment_size`` plaintext bytes
and the last 1…``segment_size``; a decoder checks that from the raw body's length or the
zstd frame's declared size, before it decompresses anything (:mod:`segment_compression`).

The frame costs 5 bytes per segment. Putting it in the associated data rather than in the
encrypted plaintext avoids copying each segment: it reveals only whether a segment is
compressed, which its length tells anyway.
"""

import struct
from collections.abc import Iterator

from ssbg.domain.enums import Compression
from ssbg.domain.errors import IntegrityFailure
from ssbg.infrastructure.crypto.object_format import (
    TAG_BYTES,
    ObjectHeader,
    SegmentOpener,
    SegmentSealer,
)
from ssbg.infrastructure.crypto.segment_compression import (
    SegmentCompressor,
    decompress_segment,
    frame_content_size,
)

FRAME = struct.Struct(">BI")  # flag, length of the sealed bytes
FLAG_RAW = 0x00
FLAG_ZSTD = 0x01


def segment_frame(flag: int, body_length: int) -> bytes:
    return FRAME.pack(flag, body_length + TAG_BYTES)


class FramedSegmentSealer:
    """Stores each segment compressed when that makes it shorter, raw otherwise, sealed with
    its frame. Called in order on one thread (the compressor's context is not shared)."""

    overhead = FRAME.size + TAG_BYTES  # bytes a stored segment adds to its body

    def __init__(self, dek: bytes, header: bytes, compressor: SegmentCompressor | None) -> None:
        self._sealer = SegmentSealer(dek, header)
        self._compressor = compressor

    def seal(self, index: int, plaintext: bytes, last: bool) -> bytes:
        compressed = self._compressor.compress(plaintext) if self._compressor else None
        if compressed is None:
            frame = segment_frame(FLAG_RAW, len(plaintext))
            return frame + self._sealer.seal(index, plaintext, last, frame)
        frame = segment_frame(FLAG_ZSTD, len(compressed))
        return frame + self._sealer.seal(index, compressed, last, frame)


class Plaintexts:
    """The plaintext of authenticated segments, in order: raw bodies as they are, compressed
    ones decompressed one at a time *as this is iterated* — so memory holds one decompressed
    segment, whatever the compression ratio. Iterate it on a worker thread: decompression is
    CPU work. A frame that does not decompress to its declared size raises
    ``IntegrityFailure`` during the iteration."""

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[bytes, int]]) -> None:
        self._items = items  # (body, declared size — 0 for a raw body)

    def __iter__(self) -> Iterator[bytes]:
        for body, declared in self._items:
            yield body if not declared else decompress_segment(body, declared)


class FramedSegmentDecoder:
    """Cuts a version 2 segment stream into frames and authenticates each segment as soon as
    it is known whether it is the last (i.e. once a byte follows it, or at :meth:`finish`).

    Memory: one segment's sealed bytes (a segment that arrives whole inside an immutable chunk
    is opened from a view of it) plus the compressed bodies of one chunk until they are
    iterated; see :class:`Plaintexts`.
    """

    def __init__(self, opener: SegmentOpener, header: ObjectHeader) -> None:
        self._opener = opener
        self._size = header.segment_size
        self._zstd = header.compression is Compression.ZSTD
        self._frame = bytearray()  # the frame being read, < FRAME.size bytes
        self._current = b""  # the frame of the segment being read or pending
        self._need = 0  # sealed bytes of the current segment; 0 between segments
        self._buffer = bytearray(header.segment_size + TAG_BYTES)
        self._filled = 0
        # A complete segment, not yet opened: (chunk, offset) when it lies whole in an
        # immutable chunk, else None and it is in ``_buffer[:_filled]``.
        self._pending: tuple[bytes, int, int] | None = None
        self._pending_in_buffer = False
        self._index = 0
        self.plaintext_bytes = 0
        self.stored_bytes = 0

    def feed(self, chunk: bytes | memoryview) -> Plaintexts:
        opened: list[tuple[bytes, int]] = []
        whole = chunk if isinstance(chunk, bytes) else None
        with memoryview(chunk) as data:
            offset, total = 0, len(data)
            while offset < total:
                if self._has_pending:  # a byte follows it: it is not the last
                    opened.append(self._open_pending(last=False))
                if not self._need:
                    taken = min(FRAME.size - len(self._frame), total - offset)
                    self._frame += data[offset : offset + taken]
                    offset += taken
                    if len(self._frame) == FRAME.size:
                        self._start_segment()
                    continue
                if whole is not None and not self._filled and total - offset >= self._need:
                    self._pending = (whole, offset, self._need)
                    offset += self._need
                    self._need = 0
                    continue
                taken = min(self._need - self._filled, total - offset)
                self._buffer[self._filled : self._filled + taken] = data[offset : offset + taken]
                self._filled += taken
                offset += taken
                if self._filled == self._need:
                    self._pending_in_buffer = True
                    self._need = 0
        return Plaintexts(opened)

    def finish(self) -> bytes:
        """The last segment's plaintext; ``IntegrityFailure`` if the object ends anywhere but
        right after a whole segment (a truncated frame or segment, or no segment at all)."""
        if not self._has_pending or self._frame or self._need:
            raise IntegrityFailure()
        return b"".join(Plaintexts([self._open_pending(last=True)]))

    @property
    def _has_pending(self) -> bool:
        return self._pending is not None or self._pending_in_buffer

    def _start_segment(self) -> None:
        flag, length = FRAME.unpack(self._frame)
        if (
            flag not in (FLAG_RAW, FLAG_ZSTD)
            or (flag == FLAG_ZSTD and not self._zstd)
            or not TAG_BYTES < length <= self._size + TAG_BYTES
        ):
            raise IntegrityFailure()
        self._current = bytes(self._frame)
        self._frame.clear()
        self._need = length

    def _open_pending(self, *, last: bool) -> tuple[bytes, int]:
        if self._pending is not None:
            chunk, offset, length = self._pending
            self._pending = None
            with memoryview(chunk) as view, view[offset : offset + length] as sealed:
                body = self._opener.open(self._index, sealed, last, self._current)
        else:
            with memoryview(self._buffer) as view, view[: self._filled] as sealed:
                body = self._opener.open(self._index, sealed, last, self._current)
            self._pending_in_buffer = False
            self._filled = 0
        self._index += 1
        compressed = self._current[0] == FLAG_ZSTD
        size = frame_content_size(body) if compressed else len(body)
        # Every segment but the last holds exactly segment_size bytes; the last 1…that.
        if not 0 < size <= self._size or (not last and size != self._size):
            raise IntegrityFailure()
        self.plaintext_bytes += size
        self.stored_bytes += len(body)
        return body, size if compressed else 0
