"""Persistence of alerts (SPEC §13.2). Status changes load the row under a lock, change it
and flush (alerts are sealed rows)."""

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ssbg.domain.alerts import AlertSeverity, AlertStatus, Overdue
from ssbg.domain.queries import AlertCursor, AlertFilters
from ssbg.infrastructure.db.models import Alert


def _overdue(overdue: Overdue) -> ColumnElement[bool]:
    """SQL for ``overdue.includes(Alert.triggered_at)``."""
    return or_(Alert.triggered_at <= overdue.before, Alert.triggered_at > overdue.ahead)


def _effective_status_is(status: AlertStatus, overdue: Overdue) -> ColumnElement[bool]:
    """SQL for "the effective status is ``status``" (see ``effective_alert_status``)."""
    new = Alert.status == AlertStatus.NEW
    if status is AlertStatus.ESCALATED:
        return or_(Alert.status == AlertStatus.ESCALATED, and_(new, _overdue(overdue)))
    if status is AlertStatus.NEW:
        return and_(new, ~_overdue(overdue))
    return Alert.status == status


class AlertsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, alert: Alert) -> None:
        self._session.add(alert)

    async def get_or_none(self, alert_id: UUID, *, for_update: bool = False) -> Alert | None:
        statement = select(Alert).where(Alert.id == alert_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def open_for(self, rule_id: str, subject: str) -> Alert | None:
        """The open alert of ``rule_id`` about ``subject``, locked (there is at most one)."""
        result = await self._session.execute(
            select(Alert)
            .where(
                Alert.rule_id == rule_id,
                Alert.subject == subject,
                Alert.status != AlertStatus.RESOLVED,
            )
            .with_for_update()
        )
        return result.scalar_one_or_none()

    async def list(
        self,
        filters: AlertFilters,
        overdue: Overdue,
        after: AlertCursor | None,
        limit: int,
    ) -> Sequence[Alert]:
        statement = select(Alert)
        if filters.status is not None:
            statement = statement.where(_effective_status_is(AlertStatus(filters.status), overdue))
        if filters.severity is not None:
            statement = statement.where(Alert.severity == AlertSeverity(filters.severity))
        if filters.rule_id is not None:
            statement = statement.where(Alert.rule_id == filters.rule_id)
        if after is not None:
            statement = statement.where(
                or_(
                    Alert.triggered_at < after.triggered_at,
                    and_(Alert.triggered_at == after.triggered_at, Alert.id < after.alert_id),
                )
            )
        statement = statement.order_by(Alert.triggered_at.desc(), Alert.id.desc()).limit(limit)
        return (await self._session.execute(statement)).scalars().all()

    async def overdue_for_escalation(self, overdue: Overdue, limit: int) -> Sequence[UUID]:
        """``NEW`` alerts whose escalation has not been recorded yet, oldest first."""
        result = await self._session.execute(
            select(Alert.id)
            .where(Alert.status == AlertStatus.NEW, _overdue(overdue))
            .order_by(Alert.triggered_at)
            .limit(limit)
        )
        return result.scalars().all()

    async def count_open_by_severity(self) -> dict[AlertSeverity, int]:
        result = await self._session.execute(
            select(Alert.severity, func.count())
            .where(Alert.status != AlertStatus.RESOLVED)
            .group_by(Alert.severity)
        )
        counts = {severity: 0 for severity in AlertSeverity}
        for severity, count in result.all():
            counts[AlertSeverity(severity)] = count
        return counts
