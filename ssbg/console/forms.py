"""Reading a console form through the API's own request schema, so a form is refused exactly
where the API's JSON body would be (JSON mode: the schema's strict types and patterns)."""

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ssbg.domain.errors import ValidationFailed

M = TypeVar("M", bound=BaseModel)


def as_request(schema: type[M], body: dict[str, Any]) -> M:
    """``body`` validated as the API validates its JSON; else ``422 VALIDATION_ERROR`` naming
    each refused field with its message (never the value: it might be a secret)."""
    try:
        return schema.model_validate_json(json.dumps(body))
    except ValidationError as error:
        details: dict[str, Any] = {}
        for problem in error.errors():
            name = ".".join(str(part) for part in problem.get("loc", ())) or "form"
            details.setdefault(name, problem.get("msg", "invalid"))
        raise ValidationFailed(details=details) from None


def list_of(text: str) -> list[str]:
    """The entries of a text field, separated by spaces or commas."""
    return [entry for entry in text.replace(",", " ").split() if entry]
