"""The OpenAPI description is the contract (SPEC §4, §13.3): what an operation can answer is
declared once, here, from what it depends on — no route can forget a status or a header.

A route names the errors of its own use case (``responses=error_responses(...)``); this module
adds what its dependencies bring:

* every operation that reads an API key: 401 ``AUTH_INVALID_KEY``, 429 ``AUTH_THROTTLED`` (with
  ``Retry-After``) and 503 ``DATABASE_UNAVAILABLE`` (the key is checked in the database);
* every ``require(permission)``: 403 ``FORBIDDEN_ROLE``, 423 ``INCIDENT_LOCKDOWN`` unless the
  permission stays open at level 3, and with ``mfa=True`` the two MFA 401s;
* every operation with an input: 422 ``VALIDATION_ERROR``; every operation: 500.

Every error uses the one envelope schema (``ErrorResponse``), every response declares
``X-Request-ID``, and every 429 declares ``Retry-After``. The 405 of an undeclared method, with
its ``Allow``, is the error handler's (``ssbg.api.errors``).
"""

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from ssbg.api.dependencies import authenticate, requirement_of
from ssbg.api.errors import ErrorResponse
from ssbg.api.request_context import REQUEST_ID_HEADER
from ssbg.api.schemas.common import INT64_MAX, INT64_MIN
from ssbg.domain.errors import (
    AuthInvalidKey,
    AuthMfaInvalid,
    AuthMfaRequired,
    AuthThrottled,
    DatabaseUnavailable,
    ForbiddenRole,
    IncidentLockdown,
    InternalError,
    SsbgError,
    ValidationFailed,
)
from ssbg.domain.permissions import allowed_in_lockdown

ERROR_SCHEMA = "ErrorResponse"
_ERROR_CONTENT = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}}

HEADERS: dict[str, dict[str, Any]] = {
    REQUEST_ID_HEADER: {
        "description": "The request's id, also in the body's meta or error and in the logs.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    },
    "Location": {
        "description": "The path of the created resource.",
        "required": True,
        "schema": {"type": "string"},
    },
}


def header_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/headers/{name}"}


def location_header() -> dict[str, Any]:
    """``responses=`` entry for a status whose response carries ``Location``."""
    return {"headers": {"Location": header_ref("Location")}}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def derived_errors(route: APIRoute) -> list[type[SsbgError]]:
    """The errors ``route`` can answer because of what it depends on (see the module doc)."""
    errors: list[type[SsbgError]] = [InternalError]
    if any(True for _ in _params(route.dependant)) or route_takes_raw_body(route):
        errors.append(ValidationFailed)
    calls = list(_calls(route.dependant))
    if authenticate in calls:
        errors += [AuthInvalidKey, AuthThrottled, DatabaseUnavailable]
    for call in calls:
        requirement = requirement_of(call)
        if requirement is None:
            continue
        errors.append(ForbiddenRole)
        if not allowed_in_lockdown(requirement.permission):
            errors.append(IncidentLockdown)
        if requirement.mfa:
            errors += [AuthMfaRequired, AuthMfaInvalid]
    return errors


def route_takes_raw_body(route: APIRoute) -> bool:
    """A route that reads its body itself declares it in ``openapi_extra``."""
    return bool(route.openapi_extra and "requestBody" in route.openapi_extra)


def _params(dependant: Dependant) -> Iterator[Any]:
    yield from dependant.path_params
    yield from dependant.query_params
    yield from dependant.header_params
    yield from dependant.body_params
    for sub in dependant.dependencies:
        yield from _params(sub)


_FASTAPI_DEFAULTS = {"Validation Error"}  # FastAPI's own 422, replaced by ours


def _codes(description: str) -> set[str]:
    return {part.strip() for part in description.split(" / ") if part.strip()} - _FASTAPI_DEFAULTS


def _declare(operation: dict[str, Any], errors: list[type[SsbgError]]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    by_status: dict[str, set[str]] = {}
    for error in errors:
        by_status.setdefault(str(error.status), set()).add(error.code)
    for status, codes in by_status.items():
        response = responses.setdefault(status, {"description": ""})
        known = _codes(response.get("description", ""))
        response["description"] = " / ".join(sorted(known | codes))
    for status, response in responses.items():
        if status.startswith(("4", "5")):
            response["content"] = _ERROR_CONTENT
        headers = response.setdefault("headers", {})
        headers[REQUEST_ID_HEADER] = header_ref(REQUEST_ID_HEADER)
        if status == "429":
            headers["Retry-After"] = header_ref("Retry-After")
    operation["responses"] = dict(sorted(responses.items()))


def contract_openapi(app: FastAPI) -> dict[str, Any]:
    """``app.openapi``: FastAPI's description, with every declaration of the module doc."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {})
    error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = components.setdefault("schemas", {})
    schemas.update(error_schema.pop("$defs", {}))
    schemas[ERROR_SCHEMA] = error_schema
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422, not ours
        schemas.pop(name, None)
    components["headers"] = HEADERS
    _integer_bounds(schema)
    # FastAPI keeps included routers nested; their route contexts carry the full paths.
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not context.include_in_schema:
            continue
        errors = derived_errors(route)
        for method in context.methods or ():
            _declare(schema["paths"][context.path_format][method.lower()], errors)
    app.openapi_schema = schema
    return schema


def _integer_bounds(node: Any) -> None:
    """FastAPI's OpenAPI model keeps ``minimum``/``maximum`` as floats: an integer's bounds are
    written back as integers (2**63 - 1 came out as 9.223372036854776e+18, which is 2**63)."""
    if isinstance(node, list):
        for item in node:
            _integer_bounds(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "integer":
        for bound in ("minimum", "maximum"):
            value = node.get(bound)
            if isinstance(value, float) and value.is_integer():
                node[bound] = max(INT64_MIN, min(INT64_MAX, int(value)))
    for child in node.values():
        _integer_bounds(child)


def install_contract(app: FastAPI) -> None:
    app.openapi = lambda: contract_openapi(app)  # type: ignore[method-assign]
