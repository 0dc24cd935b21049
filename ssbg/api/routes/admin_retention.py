"""Retention (SPEC §13.4): the rules, and applying them (a dry run plans only)."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request

from ssbg.api.dependencies import MfaTokenDep, ServicesDep, require
from ssbg.api.errors import error_responses
from ssbg.api.request_context import request_id_of
from ssbg.api.schemas.common import Envelope, ListEnvelope, ListMeta, Meta
from ssbg.api.schemas.retention import (
    RetentionApply,
    RetentionReportOut,
    RetentionRuleCreate,
    RetentionRuleOut,
    RetentionRulePatch,
)
from ssbg.domain.errors import (
    AuthInvalidKey,
    AuthMfaInvalid,
    AuthMfaRequired,
    Conflict,
    ForbiddenRole,
    IncidentLockdown,
    NotFound,
    StorageUnavailable,
    ValidationFailed,
)
from ssbg.domain.identity import Actor
from ssbg.domain.permissions import Permission

router = APIRouter(prefix="/admin", tags=["admin: retention"])
Manager = Annotated[Actor, Depends(require(Permission.RETENTION_MANAGE))]
_ERRORS = (AuthInvalidKey, ForbiddenRole)


def _meta(request: Request) -> Meta:
    return Meta(request_id=request_id_of(request.scope))


@router.post(
    "/retention-rules",
    status_code=201,
    response_model=Envelope[RetentionRuleOut],
    responses=error_responses(*_ERRORS, Conflict, ValidationFailed),
)
async def create_retention_rule(
    body: RetentionRuleCreate, request: Request, services: ServicesDep, actor: Manager
) -> Envelope[RetentionRuleOut]:
    """Create a retention rule: restic's ``forget`` counts (``keep_last``, ``keep_daily``,
    ``keep_weekly``, ``keep_monthly``, at least one above 0) applied within each source system
    its globs match, to backups of its ``classifications`` (empty: all), never to a backup
    younger than ``min_age_days``. Audited ``RETENTION_RULE_CREATE``; raises alert M9."""
    rule = await services.retention.create_rule(actor, body.to_request())
    return Envelope(data=RetentionRuleOut.of(rule), meta=_meta(request))


@router.get(
    "/retention-rules",
    response_model=ListEnvelope[RetentionRuleOut],
    responses=error_responses(*_ERRORS),
)
async def list_retention_rules(
    request: Request, services: ServicesDep, actor: Manager
) -> ListEnvelope[RetentionRuleOut]:
    """Every retention rule, active or not, by name."""
    rules = await services.retention.list_rules()
    return ListEnvelope(
        data=[RetentionRuleOut.of(rule) for rule in rules],
        meta=ListMeta(request_id=request_id_of(request.scope), total=len(rules)),
    )


@router.get(
    "/retention-rules/{rule_id}",
    response_model=Envelope[RetentionRuleOut],
    responses=error_responses(*_ERRORS, NotFound),
)
async def get_retention_rule(
    rule_id: UUID, request: Request, services: ServicesDep, actor: Manager
) -> Envelope[RetentionRuleOut]:
    rule = await services.retention.get_rule(rule_id)
    return Envelope(data=RetentionRuleOut.of(rule), meta=_meta(request))


@router.patch(
    "/retention-rules/{rule_id}",
    response_model=Envelope[RetentionRuleOut],
    responses=error_responses(*_ERRORS, NotFound, Conflict, ValidationFailed),
)
async def update_retention_rule(
    rule_id: UUID,
    body: RetentionRulePatch,
    request: Request,
    services: ServicesDep,
    actor: Manager,
) -> Envelope[RetentionRuleOut]:
    """Change fields of a rule (``is_active: false`` switches it off; there is no delete).
    The rule as changed must still keep something. Audited ``RETENTION_RULE_UPDATE``."""
    rule = await services.retention.update_rule(actor, rule_id, body.to_changes())
    return Envelope(data=RetentionRuleOut.of(rule), meta=_meta(request))


@router.post(
    "/retention/apply",
    response_model=Envelope[RetentionReportOut],
    responses=error_responses(
        *_ERRORS, AuthMfaRequired, AuthMfaInvalid, IncidentLockdown, StorageUnavailable
    ),
)
async def apply_retention(
    body: RetentionApply,
    request: Request,
    services: ServicesDep,
    actor: Manager,
    mfa_token: MfaTokenDep = None,
) -> Envelope[RetentionReportOut]:
    """Plan retention over the ``ACTIVE`` backups and, with ``"dry_run": false``, delete what
    no matching rule keeps (``DELETED``, objects removed, each audited ``RETENTION_DELETE``
    with the rules). A backup no active rule matches, a held one and a ``QUARANTINED`` one are
    never deleted. Each deletion passes the policy engine as a deletion by hand would
    (``X-MFA-Token`` where a policy asks for MFA); a backup held or changed since the plan is
    skipped. The answer lists what was (dry run: would be) deleted with the rules that matched
    it, and every survivor with the rules that keep it and why."""
    report = await services.retention.apply(
        actor,
        dry_run=body.dry_run,
        mfa_token=mfa_token,
        backup_ids=frozenset(body.backup_ids) if body.backup_ids is not None else None,
    )
    return Envelope(data=RetentionReportOut.of(report), meta=_meta(request))
