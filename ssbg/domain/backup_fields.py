"""Rules for the descriptive fields of a backup submission (SPEC §3), without I/O."""

import re
import unicodedata

SOURCE_SYSTEM_PATTERN = r"^[A-Za-z0-9._-]{1,200}$"
MAX_DESCRIPTION_LENGTH = 2000
MAX_FILENAME_LENGTH = 255
MAX_CONTENT_TYPE_LENGTH = 255
DEFAULT_CONTENT_TYPE = "application/octet-stream"

_SOURCE_SYSTEM = re.compile(SOURCE_SYSTEM_PATTERN)
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;.*)?$")


def check_source_system(value: str) -> str:
    if not _SOURCE_SYSTEM.fullmatch(value):
        raise ValueError("must be 1-200 characters of A-Z, a-z, 0-9, '.', '_' or '-'")
    return value


def check_description(value: str) -> str:
    if len(value) > MAX_DESCRIPTION_LENGTH:
        raise ValueError(f"must be at most {MAX_DESCRIPTION_LENGTH} characters")
    if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n\r" for ch in value):
        raise ValueError("must not contain control characters")
    return value


def normalize_filename(value: str) -> str:
    """The last path component of a client-supplied file name, checked.

    Clients sometimes send a full path; only the final component names the file, and a name
    without separators is what a restore may safely offer back.
    """
    name = re.split(r"[/\\]", value)[-1]
    if not name or name in {".", ".."}:
        raise ValueError("must name a file")
    if len(name) > MAX_FILENAME_LENGTH:
        raise ValueError(f"must be at most {MAX_FILENAME_LENGTH} characters")
    if any(unicodedata.category(ch) in {"Cc", "Cf"} for ch in name):
        raise ValueError("must not contain control characters")
    return name


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
