"""Schemathesis hooks for ``make schemathesis``: the few constraints that JSON Schema cannot
state, taught to the generator — never a check relaxed, never a failure filtered.

The OpenAPI description says each of them in words; these hooks make schemathesis's *valid*
requests (positive mode) honour them, so that "schema-valid request rejected" keeps meaning
that the description and the server disagree. Negative cases are left exactly as generated.

* ``format: ssbg-cursor``: a list cursor is a value the API returned (opaque URL-safe base64 of
  a position), not any string its pattern allows; one that is not is replaced by a real
  cursor, made with the gateway's own encoder from the generated text.
* ``POST /backups``: with a raw body, ``classification`` and ``source_system`` are required
  query parameters; with a multipart body they are form fields and the query carries none
  (OpenAPI cannot make a parameter's presence depend on the body's media type); and the
  ``file`` part comes last, after the fields (OpenAPI cannot order the parts of a form); a
  ``compression_level`` comes with ``compression=zstd`` (a relation between two fields).
* ``POST /audit/validate`` and ``GET /audit/export``: ``to_sequence`` is not below
  ``from_sequence`` (a relation between two fields).
* ``POST /admin/verify``: ``created_from`` is before ``created_to`` (a relation between two
  fields).
* ``POST /admin/api-keys``: ``expires_at`` lies in the future (a relation to the clock).
* ``PATCH /admin/retention-rules/{rule_id}``: the rule as changed still keeps something (a
  relation to the stored rule): a change that sets keep counts sets one of them above 0.

Loaded with ``SCHEMATHESIS_HOOKS=tests.contract.hooks`` (see tests/contract/run_schemathesis.py).
"""

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import schemathesis
from schemathesis import GenerationMode

from ssbg.api.pagination import decode_backup_cursor, encode_backup_cursor
from ssbg.domain.errors import ValidationFailed
from ssbg.domain.queries import BackupCursor

API = "/api/v1"
RAW_FIELDS = ("classification", "source_system", "filename", "description")
LISTS = {("GET", f"{API}/backups"), ("GET", f"{API}/admin/alerts")}


def _real_cursor(query: dict[str, Any]) -> None:
    """A generated ``cursor`` that the API could not have returned becomes one it could (the
    same text always gives the same cursor: the run stays reproducible)."""
    given = query.get("cursor")
    if not isinstance(given, str):
        return
    try:
        decode_backup_cursor(given)  # alert cursors have the same form
    except ValidationFailed:
        digest = hashlib.sha256(given.encode()).digest()
        at = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(
            microseconds=int.from_bytes(digest[:6], "big")
        )
        query["cursor"] = encode_backup_cursor(
            BackupCursor(created_at=at, backup_id=UUID(bytes=digest[16:]))
        )


def _backup_fields(case: Any) -> None:
    query = dict(case.query or {})
    if case.media_type == "application/octet-stream":
        query.setdefault("classification", "INTERNAL")
        query.setdefault("source_system", "schemathesis")
    elif case.media_type == "multipart/form-data":
        for name in RAW_FIELDS:
            query.pop(name, None)
        if isinstance(case.body, dict) and "file" in case.body:
            case.body = {
                **{k: v for k, v in case.body.items() if k != "file"},
                "file": case.body["file"],
            }
    for fields in (query, case.body):
        if isinstance(fields, dict) and fields.get("compression_level") is not None:
            fields["compression"] = "zstd"
    case.query = query


def _number(value: Any) -> int | None:
    """An integer as generated: a number in a body (``5`` or ``5.0``), its text in a query."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isascii() and value.lstrip("-").isdigit():
        return int(value)
    return None


def _ordered_range(values: dict[str, Any] | None) -> None:
    if not isinstance(values, dict):
        return
    low, high = _number(values.get("from_sequence")), _number(values.get("to_sequence"))
    if low is not None and high is not None and high < low:
        values["from_sequence"], values["to_sequence"] = (
            values["to_sequence"],
            values["from_sequence"],
        )


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _ordered_window(body: Any) -> None:
    if not isinstance(body, dict):
        return
    low, high = _moment(body.get("created_from")), _moment(body.get("created_to"))
    if low is None or high is None or low < high:
        return
    if low == high:
        del body["created_to"]
    else:
        body["created_from"], body["created_to"] = body["created_to"], body["created_from"]


def _future_expiry(body: Any) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("expires_at"), str):
        return
    try:
        expires_at = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    except ValueError:
        return
    now = datetime.now(UTC)
    if expires_at <= now + timedelta(minutes=5):
        body["expires_at"] = (now + timedelta(days=30)).isoformat().replace("+00:00", "Z")


KEEP_COUNTS = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly")


def _keeps_something(body: Any) -> None:
    if not isinstance(body, dict):
        return
    given = [name for name in KEEP_COUNTS if body.get(name) is not None]
    if given and not any((_number(body[name]) or 0) > 0 for name in given):
        body[given[0]] = 1


def _binary_file(case: Any) -> None:
    """Schemathesis fills a required ``format: binary`` part it has no value for with an empty
    *text* placeholder, which its own validator then counts as invalid data (every such request
    would be judged "negative" though it sends a real payload): a payload is bytes."""
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("file"), str):
        case.body = {**body, "file": body["file"].encode() or b"schemathesis payload"}


@schemathesis.hook
def map_case(ctx: Any, case: Any) -> Any:
    if case.media_type == "multipart/form-data":
        _binary_file(case)
    meta = case.meta
    if meta is None or meta.generation.mode is not GenerationMode.POSITIVE:
        return case
    operation = (case.operation.method.upper(), case.operation.path)
    if operation in LISTS:
        query = dict(case.query or {})
        _real_cursor(query)
        case.query = query
    elif operation == ("POST", f"{API}/backups"):
        _backup_fields(case)
    elif operation == ("GET", f"{API}/audit/export"):
        query = dict(case.query or {})
        _ordered_range(query)
        case.query = query
    elif operation == ("POST", f"{API}/audit/validate"):
        _ordered_range(case.body)
    elif operation == ("POST", f"{API}/admin/verify"):
        _ordered_window(case.body)
    elif operation == ("POST", f"{API}/admin/api-keys"):
        _future_expiry(case.body)
    elif operation == ("PATCH", f"{API}/admin/retention-rules/{{rule_id}}"):
        _keeps_something(case.body)
    return case
