"""A multipart part's ``Content-Disposition``, parsed from its raw bytes (SPEC §13.3).

Clients put file names in a part header three ways, and each is kept exactly:

* ``filename="отчёт.txt"`` with the name's UTF-8 bytes as they are (curl, browsers, RFC 7578
  §4.2);
* ``filename="caf\\xe9.txt"`` with Latin-1 bytes (older clients) — a value that is not valid
  UTF-8 is read as Latin-1, which decodes any byte;
* ``filename*=UTF-8''%D0%BE…`` (RFC 5987/8187: charset ``UTF-8`` or ``ISO-8859-1``,
  percent-encoded). It wins over a plain ``filename`` given beside it.

The header is parsed here instead of by python-multipart's ``parse_options_header``, which
takes text, encodes it as Latin-1 (a ``UnicodeEncodeError`` for any other character) and drops
``filename*``. Anything this parser cannot read unambiguously — an unterminated quote, a
parameter given twice, a bad percent escape, an unknown charset — is
:class:`MalformedDisposition`, for the caller to answer with a 422.
"""

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

_OWS = rb"[ \t]*"
_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = rb'"((?:[^"\\]|\\.)*)"'
_BARE = rb'([^;"\s]+)'
_TYPE = re.compile(_OWS + rb"(" + _TOKEN + rb")" + _OWS)
_VALUE = rb"(?:" + _QUOTED + rb"|" + _BARE + rb")"
_PARAM = re.compile(
    rb";" + _OWS + rb"(" + _TOKEN + rb")" + _OWS + rb"=" + _OWS + _VALUE + _OWS, re.DOTALL
)
_EMPTY_PARAM = re.compile(rb";" + _OWS)  # a trailing or doubled ';', as some clients send
_EXT_VALUE = re.compile(rb"([!#$&+^_`{}~0-9A-Za-z-]+)'([A-Za-z0-9-]*)'(.*)", re.DOTALL)
_PERCENT_ENCODED = re.compile(rb"(?:[^%]|%[0-9A-Fa-f]{2})*", re.DOTALL)
# Only these two escapes are undone: a Windows path in a quoted name keeps its separators.
_UNESCAPE = re.compile(rb'\\([\\"])')
_CHARSETS = {b"utf-8": "utf-8", b"iso-8859-1": "latin-1"}


class MalformedDisposition(ValueError):
    """The header cannot be read unambiguously."""


@dataclass(frozen=True)
class ContentDisposition:
    kind: str  # lower case: "form-data"
    params: dict[str, str]  # parameter names in lower case, ``name*`` already decoded into name

    @property
    def name(self) -> str | None:
        return self.params.get("name")

    @property
    def filename(self) -> str | None:
        return self.params.get("filename")


def _text(value: bytes) -> str:
    """A plain parameter's bytes: UTF-8 when they are, else Latin-1 (which any byte is)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _extended(value: bytes) -> str:
    """An RFC 8187 ``ext-value``: ``charset'language'percent-encoded``."""
    match = _EXT_VALUE.fullmatch(value)
    if match is None:
        raise MalformedDisposition("an extended parameter must be charset'language'value")
    charset = _CHARSETS.get(match.group(1).lower())
    if charset is None:
        raise MalformedDisposition("an extended parameter must be UTF-8 or ISO-8859-1")
    encoded = match.group(3)
    if not _PERCENT_ENCODED.fullmatch(encoded):
        raise MalformedDisposition("a bad percent escape")
    try:
        return unquote_to_bytes(encoded).decode(charset)
    except UnicodeDecodeError:
        raise MalformedDisposition("the value is not in its declared charset") from None


def parse_content_disposition(raw: bytes) -> ContentDisposition:
    """The disposition type and parameters of ``raw`` (a header value, without CRLF)."""
    match = _TYPE.match(raw)
    if match is None:
        raise MalformedDisposition("no disposition type")
    kind = match.group(1).decode("ascii").lower()
    plain: dict[str, str] = {}
    extended: dict[str, str] = {}
    position = match.end()
    while position < len(raw):
        param = _PARAM.match(raw, position)
        if param is None:
            empty = _EMPTY_PARAM.match(raw, position)
            if empty is None or empty.end() == position:
                raise MalformedDisposition("unreadable parameters")
            position = empty.end()
            continue
        position = param.end()
        name = param.group(1).decode("ascii").lower()
        quoted, bare = param.group(2), param.group(3)
        if name.endswith("*"):
            target, value = extended, _extended(bare if quoted is None else quoted)
            name = name[:-1]
        elif quoted is not None:
            target, value = plain, _text(_UNESCAPE.sub(rb"\1", quoted))
        else:
            target, value = plain, _text(bare)
        if name in target:
            raise MalformedDisposition(f"{name} given more than once")
        target[name] = value
    return ContentDisposition(kind, {**plain, **extended})
