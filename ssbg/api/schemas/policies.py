from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from annotated_types import Interval
from pydantic import AfterValidator, BaseModel, Field, StrictBool, StrictInt, StringConstraints

from ssbg.api.schemas.common import INTEGRAL, StrictInput
from ssbg.domain.enums import Classification, PolicyEffect, PolicyOperation, Role
from ssbg.domain.hours import HOURS_PATTERN, parse_hours
from ssbg.infrastructure.db.models import Policy
from ssbg.services.policy_service import NewPolicy, PolicyChanges

Name = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9 ._:-]+$"),
]
Text = Annotated[str, StringConstraints(strict=True, max_length=2000)]
Glob = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=200)]
Label = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=100)]
Priority = Annotated[
    StrictInt,
    Interval(ge=-1_000_000, le=1_000_000),
    INTEGRAL,
]


def _valid_hours(value: str) -> str:
    parse_hours(value)
    return value


Hours = Annotated[
    str, StringConstraints(strict=True, pattern=HOURS_PATTERN), AfterValidator(_valid_hours)
]


class PolicyRuleIn(StrictInput):
    """A field left out matches everything; a present list must name at least one value."""

    operations: list[PolicyOperation] | None = Field(default=None, min_length=1)
    roles: list[Role] | None = Field(default=None, min_length=1)
    classifications: list[Classification] | None = Field(default=None, min_length=1)
    source_systems: list[Glob] | None = Field(default=None, min_length=1, max_length=100)
    departments: list[Label] | None = Field(default=None, min_length=1, max_length=100)
    hours: Hours | None = None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class PolicyCreate(StrictInput):
    name: Name
    description: Text = ""
    effect: PolicyEffect
    priority: Priority = 100
    is_active: StrictBool = True
    rule: PolicyRuleIn

    def to_request(self) -> NewPolicy:
        return NewPolicy(
            name=self.name,
            description=self.description,
            effect=self.effect,
            priority=self.priority,
            is_active=self.is_active,
            rule=self.rule.to_json(),
        )


class PolicyPatch(StrictInput):
    name: Name | None = None
    description: Text | None = None
    effect: PolicyEffect | None = None
    priority: Priority | None = None
    is_active: StrictBool | None = None
    rule: PolicyRuleIn | None = None

    def to_changes(self) -> PolicyChanges:
        return PolicyChanges(
            name=self.name,
            description=self.description,
            effect=self.effect,
            priority=self.priority,
            is_active=self.is_active,
            rule=self.rule.to_json() if self.rule is not None else None,
        )


class PolicyOut(BaseModel):
    policy_id: UUID
    name: str
    description: str
    effect: PolicyEffect
    priority: int
    is_active: bool
    rule: dict[str, Any]
    created_at: datetime
    created_by: UUID | None
    updated_at: datetime
    updated_by: UUID | None

    @classmethod
    def of(cls, policy: Policy) -> "PolicyOut":
        return cls(
            policy_id=policy.id,
            name=policy.name,
            description=policy.description,
            effect=policy.effect,
            priority=policy.priority,
            is_active=policy.is_active,
            rule=policy.rule,
            created_at=policy.created_at,
            created_by=policy.created_by,
            updated_at=policy.updated_at,
            updated_by=policy.updated_by,
        )
