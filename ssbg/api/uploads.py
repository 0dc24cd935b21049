"""Streaming request bodies for ``POST /backups`` — nothing is spooled, buffered or written.

* ``multipart/form-data``: the body goes through python-multipart's push parser
  (:class:`python_multipart.MultipartParser`) chunk by chunk as it arrives. The descriptive
  fields come first and are collected (small, bounded); the ``file`` part must be the last
  one, and its bytes are handed on as they are parsed.
* anything else: the body itself is the payload.

Both raise :class:`~ssbg.domain.errors.ClientDisconnected` when the client goes away, and
the multipart reader raises :class:`~ssbg.domain.errors.ValidationFailed` for a malformed or
truncated body.
"""

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from ssbg.api.content_disposition import MalformedDisposition, parse_content_disposition
from ssbg.domain.errors import ClientDisconnected, ValidationFailed

FILE_FIELD = "file"
FORM_FIELDS = frozenset(
    {"classification", "source_system", "description", "compression", "compression_level"}
)
MAX_PREAMBLE_BYTES = 64 * 1024  # everything before the file's bytes: fields, part headers
MAX_FIELD_BYTES = 16 * 1024

# The parser's warnings quote bytes of the body it choked on, and a body may be plaintext.
logging.getLogger("python_multipart").setLevel(logging.ERROR)


async def body_chunks(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives, without empty chunks."""
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        raise ClientDisconnected() from None


def multipart_boundary(content_type: str) -> bytes:
    _kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ValidationFailed(details={"content-type": "multipart/form-data needs a boundary"})
    return boundary


def _invalid(message: str, name: str = "body") -> ValidationFailed:
    return ValidationFailed(message, {name: message})


@dataclass
class _Part:
    name: str
    is_file: bool
    data: bytearray = field(default_factory=bytearray)


class MultipartUpload:
    """Reads the fields of a multipart body, then streams its last part, ``file``."""

    def __init__(self, body: AsyncIterator[bytes], boundary: bytes) -> None:
        self._body = body
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_end": self._on_end,
            },
        )
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.file_content_type: str | None = None
        self._headers: dict[str, bytes] = {}  # raw values: see _on_headers_finished
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._part: _Part | None = None
        self._file_started = False
        self._file_ended = False
        self._ended = False
        self._file_data: list[bytes] = []
        self._preamble = 0

    # -- the parser's callbacks (synchronous, called from ``write``) -----------------------

    def _on_part_begin(self) -> None:
        if self._file_ended:
            raise _invalid("The file part must be the last part of the form.", FILE_FIELD)
        self._headers = {}

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        name = self._header_name.decode("latin-1").strip().lower()
        self._headers[name] = bytes(self._header_value).strip(b" \t")
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        # Content-Disposition is parsed from its bytes: a file name may be UTF-8, Latin-1 or
        # RFC 5987, and each is kept exactly (SPEC §13.3; see ssbg.api.content_disposition).
        try:
            disposition = parse_content_disposition(self._headers.get("content-disposition", b""))
        except MalformedDisposition:
            raise _invalid("A part's Content-Disposition is malformed.") from None
        name = disposition.name
        if disposition.kind != "form-data" or name is None:
            raise _invalid("Every part needs Content-Disposition: form-data; name=...")
        if name == FILE_FIELD:
            if self._file_started:
                raise _invalid("Only one file part is accepted.", FILE_FIELD)
            self._file_started = True
            self.filename = disposition.filename or None
            content_type = self._headers.get("content-type")
            self.file_content_type = (
                None if content_type is None else content_type.decode("latin-1")
            )
            self._part = _Part(name, is_file=True)
            return
        if name not in FORM_FIELDS:
            raise _invalid(f"Unknown form field {name!r}.", name)
        if name in self.fields:
            raise _invalid("Given more than once.", name)
        self._part = _Part(name, is_file=False)

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        if part is None:
            return
        if part.is_file:
            self._file_data.append(data[start:end])
            return
        part.data += data[start:end]
        if len(part.data) > MAX_FIELD_BYTES:
            raise _invalid("This field is too long.", part.name)

    def _on_part_end(self) -> None:
        part, self._part = self._part, None
        if part is None:
            return
        if part.is_file:
            self._file_ended = True
            return
        try:
            self.fields[part.name] = part.data.decode("utf-8")
        except UnicodeDecodeError:
            raise _invalid("Must be UTF-8 text.", part.name) from None

    def _on_end(self) -> None:
        self._ended = True

    # -- reading ----------------------------------------------------------------------------

    def _write(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except MultipartParseError:
            raise _invalid("The multipart body is malformed.") from None

    async def read_fields(self) -> None:
        """Consume the body up to the start of the file's bytes; fields are then in ``fields``."""
        while not self._file_started:
            try:
                chunk = await anext(self._body)
            except StopAsyncIteration:
                raise _invalid("The form has no file part.", FILE_FIELD) from None
            self._preamble += len(chunk)
            self._write(chunk)
            if not self._file_started and self._preamble > MAX_PREAMBLE_BYTES:
                raise _invalid("The form fields before the file part are too large.")

    async def file_chunks(self) -> AsyncIterator[bytes]:
        """The file part's bytes as they arrive; then checks the body ends properly."""
        while True:
            if self._file_data:
                data = b"".join(self._file_data) if len(self._file_data) > 1 else self._file_data[0]
                self._file_data.clear()
                yield data
            if self._file_ended:
                break
            try:
                chunk = await anext(self._body)
            except StopAsyncIteration:
                raise _invalid("The body ended inside the file part.", FILE_FIELD) from None
            self._write(chunk)
        trailing = 0
        async for chunk in self._body:  # the closing boundary (and any epilogue)
            trailing += len(chunk)
            if trailing > MAX_PREAMBLE_BYTES:
                raise _invalid("Too much data after the file part.")
            self._write(chunk)
        if not self._ended:
            raise _invalid("The multipart body has no closing boundary.")
