"""The streaming multipart reader, fed the same body in every kind of chunking."""

import os
from collections.abc import AsyncIterator

import pytest

from ssbg.api.uploads import MultipartUpload
from ssbg.domain.errors import ValidationFailed

BOUNDARY = b"----ssbgBoundary7MA4YWxk"
# Payload bytes that look like the start of a boundary, to exercise the parser's look-behind.
TRICKY = b"\r\n--" + BOUNDARY[:-3] + b"\r\n--" + BOUNDARY + b"X" + os.urandom(5000)


def body(payload: bytes, *, extra: bytes = b"") -> bytes:
    return (
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="classification"\r\n\r\n'
        b"SECRET\r\n"
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="description"\r\n\r\n'
        b"caf\xc3\xa9 \xe2\x9c\x93\r\n"
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"; filename="d.bin"'
        b"\r\nContent-Type: application/x-tar\r\n\r\n" + payload + b"\r\n"
        b"--" + BOUNDARY + b"--\r\n" + extra
    )


async def chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


async def read(data: bytes, size: int) -> tuple[MultipartUpload, bytes]:
    upload = MultipartUpload(chunked(data, size), BOUNDARY)
    await upload.read_fields()
    payload = b"".join([chunk async for chunk in upload.file_chunks()])
    return upload, payload


@pytest.mark.parametrize("size", [1, 2, 3, 7, 61, 1000, 4096, 10**6])
async def test_fields_and_file_survive_any_chunking(size: int) -> None:
    upload, payload = await read(body(TRICKY), size)

    assert payload == TRICKY
    assert upload.fields == {"classification": "SECRET", "description": "café ✓"}
    assert upload.filename == "d.bin"
    assert upload.file_content_type == "application/x-tar"


async def test_an_epilogue_after_the_closing_boundary_is_ignored() -> None:
    _upload, payload = await read(body(b"data", extra=b"trailing epilogue"), 5)
    assert payload == b"data"


@pytest.mark.parametrize("size", [3, 1000])
async def test_a_body_cut_inside_the_file_is_refused(size: int) -> None:
    data = body(os.urandom(3000))
    with pytest.raises(ValidationFailed):
        await read(data[: len(data) - 60], size)


async def test_a_missing_closing_boundary_is_refused() -> None:
    data = body(b"payload")
    with pytest.raises(ValidationFailed):
        await read(data[: data.rindex(b"--" + BOUNDARY)], 10)


async def test_non_utf8_field_values_are_refused() -> None:
    data = (
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="description"\r\n\r\n'
        b"\xff\xfe\r\n--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"\r\n\r\n'
        b"x\r\n--" + BOUNDARY + b"--\r\n"
    )
    with pytest.raises(ValidationFailed) as raised:
        await read(data, 100)
    assert "description" in raised.value.details


async def test_a_second_file_part_is_refused() -> None:
    data = body(b"one").replace(
        b"--" + BOUNDARY + b"--\r\n",
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"\r\n\r\ntwo\r\n'
        b"--" + BOUNDARY + b"--\r\n",
    )
    with pytest.raises(ValidationFailed):
        await read(data, 100)


async def test_oversized_fields_are_refused() -> None:
    data = (
        b"--"
        + BOUNDARY
        + b'\r\nContent-Disposition: form-data; name="description"\r\n\r\n'
        + b"x" * 70_000
    )
    with pytest.raises(ValidationFailed):
        await read(data, 4096)
