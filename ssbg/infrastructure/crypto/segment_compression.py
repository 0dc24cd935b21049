"""zstd for one segment at a time (format version 2, ``docs/object-format.md`` §1.6).

Each segment is compressed on its own, as one zstd frame that declares its content size, so
segments stay independent (bounded memory, each one authenticated on its own) and a decoder
knows how much a frame will produce *before* it decompresses it.

*Writing* (:class:`SegmentCompressor`): a segment is stored compressed only when that makes it
shorter. Data that does not compress (random, encrypted, already compressed) would cost a
whole zstd pass per segment for nothing, so a sample of the segment — ``SAMPLE_SLICES``
slices of ``SAMPLE_SLICE_BYTES`` spread across it, about 3% of a 1 MiB segment — is compressed
first, and a segment whose sample shrinks by less than 1/32 is stored raw without trying the
whole. The price: a segment whose sample looks incompressible while the rest would compress is
stored raw (correct, only larger).

*Reading* (:func:`decompress_segment`): the frame must declare its content size, which the
caller checks against the segment size *before* decompressing; the output buffer is exactly
that size (zstd then decodes in a single pass, with no window buffer of its own), trailing
data is refused and the frame must produce exactly the declared size. So a hostile frame (a
"zip bomb": a few KiB that expand to GiB) never makes the decoder allocate more than one
segment: it fails as soon as it would write past the declared size.
"""

import zstandard

from ssbg.domain.errors import IntegrityFailure

SAMPLE_SLICES = 16
SAMPLE_SLICE_BYTES = 2048
_SAMPLE_BYTES = SAMPLE_SLICES * SAMPLE_SLICE_BYTES
# Below this, a segment is compressed whole: the sample would be most of it anyway.
_SAMPLED_FROM = 4 * _SAMPLE_BYTES


class SegmentCompressor:
    """Compresses the segments of one object, in order, on one thread (a zstd context is not
    thread-safe; the upload's seal lane is its only user)."""

    def __init__(self, level: int) -> None:
        # Content size in every frame (the decoder's bound); no zstd checksum: AES-GCM already
        # authenticates every byte.
        self._context = zstandard.ZstdCompressor(
            level=level, write_content_size=True, write_checksum=False
        )

    def compress(self, segment: bytes) -> bytes | None:
        """The segment as one zstd frame, or ``None`` when it is to be stored raw."""
        if len(segment) >= _SAMPLED_FROM and self._looks_incompressible(segment):
            return None
        body = self._context.compress(segment)
        return body if len(body) < len(segment) else None

    def _looks_incompressible(self, segment: bytes) -> bool:
        stride = len(segment) // SAMPLE_SLICES
        with memoryview(segment) as view:
            sample = b"".join(
                view[i * stride : i * stride + SAMPLE_SLICE_BYTES] for i in range(SAMPLE_SLICES)
            )
        return len(self._context.compress(sample)) * 32 >= len(sample) * 31


def frame_content_size(body: bytes) -> int:
    """The content size a zstd frame declares; ``IntegrityFailure`` if it declares none or is
    not a zstd frame."""
    try:
        size = zstandard.frame_content_size(body)
    except zstandard.ZstdError:
        raise IntegrityFailure() from None
    if size < 0:  # -1: not declared
        raise IntegrityFailure()
    return size


def decompress_segment(body: bytes, size: int) -> bytes:
    """Decompress one frame that declares ``size`` bytes (checked by the caller); anything else
    — more or fewer bytes, trailing data, a corrupt frame — is ``IntegrityFailure``."""
    if frame_content_size(body) != size:
        raise IntegrityFailure()
    try:
        # A context per frame (~30 µs): contexts are not thread-safe, and frames of one
        # object may be decompressed on different lanes.
        context = zstandard.ZstdDecompressor()
        plaintext = context.decompress(body, max_output_size=size, allow_extra_data=False)
    except zstandard.ZstdError:
        raise IntegrityFailure() from None
    if len(plaintext) != size:
        raise IntegrityFailure()
    return plaintext
