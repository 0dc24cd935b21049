"""Rules for the descriptive fields of a backup submission (SPEC §3), without I/O."""

import re
import unicodedata

SOURCE_SYSTEM_PATTERN = r"^[A-Za-z0-9._-]{1,200}$"
MAX_DESCRIPTION_LENGTH = 2000
MAX_FILENAME_LENGTH = 255
MAX_CONTENT_TYPE_LENGTH = 255
DEFAULT_CONTENT_TYPE = "application/octet-stream"
# zstd levels a client may ask for (SPEC §13.4): 20-22 ("ultra") need windows far larger than
# a segment and cost minutes per GiB, so they are not offered. 3 is zstd's own default.
MIN_COMPRESSION_LEVEL = 1
MAX_COMPRESSION_LEVEL = 19
DEFAULT_COMPRESSION_LEVEL = 3


# Regex character-class bodies (``\uXXXX`` escapes, read alike by Python's ``re`` and Rust's
# ``regex``, so Pydantic and schemathesis agree with this module): Unicode category Cc
# (control) and Cf (format: soft hyphen, zero-width and bidi controls such as U+202E…) as of
# this Python's Unicode database — tests/unit/domain/test_backup_fields.py checks them.
_CONTROL = "\\u0000-\\u001f\\u007f-\\u009f"
_FORMAT = (
    "\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f"
    "\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd"
    "\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001"
    "\\U000e0020-\\U000e007f"
)
_CONTROL_OR_FORMAT = _CONTROL + _FORMAT
_CONTROL_BUT_WHITESPACE = "\\u0000-\\u0008\\u000b-\\u000c\\u000e-\\u001f\\u007f-\\u009f"
DESCRIPTION_PATTERN = f"^[^{_CONTROL_BUT_WHITESPACE}]*$"
"""Any text but control characters other than tab, newline and carriage return."""
_ANY = f"[^{_CONTROL_OR_FORMAT}]"
_IN_NAME = f"[^{_CONTROL_OR_FORMAT}/\\\\]"
_IN_NAME_NOT_DOT = f"[^{_CONTROL_OR_FORMAT}/\\\\.]"
FILENAME_PATTERN = f"^(?:{_ANY}*[/\\\\])?(?:{_IN_NAME}*{_IN_NAME_NOT_DOT}{_IN_NAME}*|\\.{{3,}})$"
"""No control or format character anywhere, and a last path component that names a file
(not empty, not ``.`` or ``..``); at most :data:`MAX_FILENAME_LENGTH` characters in all."""

_SOURCE_SYSTEM = re.compile(SOURCE_SYSTEM_PATTERN)
_DESCRIPTION = re.compile(DESCRIPTION_PATTERN)
_FILENAME = re.compile(FILENAME_PATTERN)
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;.*)?$")


def check_source_system(value: str) -> str:
    if not _SOURCE_SYSTEM.fullmatch(value):
        raise ValueError("must be 1-200 characters of A-Z, a-z, 0-9, '.', '_' or '-'")
    return value


def check_description(value: str) -> str:
    if len(value) > MAX_DESCRIPTION_LENGTH:
        raise ValueError(f"must be at most {MAX_DESCRIPTION_LENGTH} characters")
    if not _DESCRIPTION.fullmatch(value):
        raise ValueError("must not contain control characters")
    return value


def normalize_filename(value: str) -> str:
    """The last path component of a client-supplied file name, checked.

    Clients sometimes send a full path; only the final component names the file, and a name
    without separators is what a restore may safely offer back. The whole value is held to
    :data:`FILENAME_PATTERN` and :data:`MAX_FILENAME_LENGTH`, as the API declares.
    """
    if len(value) > MAX_FILENAME_LENGTH:
        raise ValueError(f"must be at most {MAX_FILENAME_LENGTH} characters")
    if any(unicodedata.category(ch) in {"Cc", "Cf"} for ch in value):
        raise ValueError("must not contain control characters")
    if not _FILENAME.fullmatch(value):
        raise ValueError("must name a file")
    return re.split(r"[/\\]", value)[-1]


def normalize_content_type(value: str | None) -> str:
    if value is None or not value.strip():
        return DEFAULT_CONTENT_TYPE
    value = value.strip()
    if (
        len(value) > MAX_CONTENT_TYPE_LENGTH
        or not _CONTENT_TYPE.fullmatch(value)
        or any(unicodedata.category(ch) == "Cc" for ch in value)
    ):
        raise ValueError("must be a media type such as application/octet-stream")
    return value
