"""Wiring: build every service once per process from the settings."""

from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from ssbg.domain.hours import parse_hours
from ssbg.infrastructure.clock import Clock, SystemClock
from ssbg.infrastructure.crypto.audit_anchor import AnchorFile
from ssbg.infrastructure.crypto.audit_signing import CheckpointSigner
from ssbg.infrastructure.crypto.integrity import IntegrityKey
from ssbg.infrastructure.crypto.key_store import FileKeyStore, resolve_key_password
from ssbg.infrastructure.storage.base import ObjectStore
from ssbg.infrastructure.storage.local import LocalObjectStore
from ssbg.infrastructure.webhook import WebhookClient
from ssbg.services.api_key_service import ApiKeyService
from ssbg.services.audit_anchor import AnchorKeeper
from ssbg.services.audit_export_service import AuditExportService
from ssbg.services.audit_service import AuditReader, AuditTrail
from ssbg.services.audit_validation_service import AuditValidationService
from ssbg.services.auth_service import AuthService
from ssbg.services.backup_recovery_service import BackupRecoveryService
from ssbg.services.backups import BackupService
from ssbg.services.bootstrap_service import BootstrapService
from ssbg.services.console_overview import ConsoleOverviewService
from ssbg.services.console_sessions import ConsoleSessionService
from ssbg.services.detection.alerts import AlertService
from ssbg.services.detection.detector import Detector
from ssbg.services.detection.raising import AlertRaiser
from ssbg.services.health_service import HealthService
from ssbg.services.incident_service import IncidentService
from ssbg.services.integrity_service import IntegrityService
from ssbg.services.key_file_service import KeyFileService
from ssbg.services.keys import KeyService
from ssbg.services.metrics_service import MetricsService
from ssbg.services.notifications import Notifications
from ssbg.services.policy_enforcement import PolicyEnforcer
from ssbg.services.policy_service import PolicyService
from ssbg.services.restores import RestoreService
from ssbg.services.retention import RetentionService
from ssbg.services.startup import StartUp
from ssbg.services.unit_of_work import AppDatabase, open_database
from ssbg.services.verification import VerificationService
from ssbg.services.webhook_sender import WebhookSender
from ssbg.settings import Settings


@dataclass
class Services:
    settings: Settings
    clock: Clock
    db: AppDatabase
    key_store: FileKeyStore
    object_store: ObjectStore
    trail: AuditTrail
    notifications: Notifications
    auth: AuthService
    api_keys: ApiKeyService
    policies: PolicyService
    audit: AuditReader
    health: HealthService
    incidents: IncidentService
    alerts: AlertService
    bootstrap: BootstrapService
    audit_validation: AuditValidationService
    audit_export: AuditExportService
    policy_enforcer: PolicyEnforcer
    backups: BackupService
    backup_recovery: BackupRecoveryService
    restores: RestoreService
    retention: RetentionService
    key_files: KeyFileService
    integrity: IntegrityService
    keys: KeyService
    metrics: MetricsService
    start_up: StartUp
    verification: VerificationService
    console_sessions: ConsoleSessionService
    console_overview: ConsoleOverviewService
    # The outbox's sender, when SSBG_ALERT_WEBHOOK_URL is set; the app's lifespan runs it.
    webhooks: WebhookSender | None = None

    async def close(self) -> None:
        if self.webhooks is not None:
            await self.webhooks.close()
        await self.object_store.close()
        await self.db.dispose()


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value else None


def build_key_store(settings: Settings) -> FileKeyStore:
    directory = settings.resolved_keystore_dir
    configured = settings.key_password.get_secret_value() if settings.key_password else None
    return FileKeyStore(directory, resolve_key_password(directory, configured))


def build_object_store(settings: Settings) -> ObjectStore:
    if settings.storage_backend == "s3":
        from ssbg.infrastructure.storage.s3 import S3ObjectStore

        return S3ObjectStore(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=_secret(settings.s3_access_key_id),
            secret_access_key=_secret(settings.s3_secret_access_key),
            create_bucket=settings.env == "development",
        )
    return LocalObjectStore(settings.resolved_storage_path)


def build_webhook_sender(
    settings: Settings, db: AppDatabase, clock: Clock, integrity: IntegrityKey, trail: AuditTrail
) -> WebhookSender | None:
    if settings.alert_webhook_url is None or settings.alert_webhook_secret is None:
        return None
    timeout = settings.alert_webhook_timeout_seconds
    client = WebhookClient(
        settings.alert_webhook_url,
        settings.alert_webhook_secret.get_secret_value().encode(),
        timeout_seconds=timeout,
    )
    return WebhookSender(db, client, clock, integrity, trail, timeout_seconds=timeout)


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    db: AppDatabase | None = None,
    key_store: FileKeyStore | None = None,
    object_store: ObjectStore | None = None,
) -> Services:
    clock = clock or SystemClock()
    key_store = key_store or build_key_store(settings)
    integrity = IntegrityKey(key_store.integrity_key)
    db = db or open_database(settings.resolved_database_url, integrity)
    object_store = object_store or build_object_store(settings)
    signer = CheckpointSigner(key_store)
    interval = settings.audit_checkpoint_interval
    anchor = AnchorKeeper(
        db,
        signer,
        AnchorFile(settings.resolved_audit_anchor_file),
        clock,
        settings.audit_anchor_seconds,
    )
    trail = AuditTrail(clock, signer, interval, anchor)
    webhooks = build_webhook_sender(settings, db, clock, integrity, trail)
    notifications = Notifications(
        clock, integrity, enabled=webhooks is not None, wake=webhooks.wake if webhooks else None
    )
    trail.observer = Detector(
        AlertRaiser(trail, notifications),
        business_hours=parse_hours(settings.business_hours),
        zone=ZoneInfo(settings.timezone),
        m3_min_bytes=settings.alert_m3_min_bytes,
    )
    auth = AuthService(
        db, trail, clock, key_store.mfa_secret_box, integrity, settings.auth_failure_limit
    )
    api_keys = ApiKeyService(db, trail, clock, key_store.mfa_secret_box, integrity, auth)
    policy_enforcer = PolicyEnforcer(clock, settings)
    backups = BackupService(db, trail, clock, settings, object_store, policy_enforcer, auth)
    restores = RestoreService(
        db,
        trail,
        clock,
        settings,
        object_store,
        key_store,
        policy_enforcer,
        auth,
        backups.lifecycle,
        integrity,
    )
    integrity_service = IntegrityService(db, trail, key_store, integrity)
    bootstrap = BootstrapService(db, trail, clock, key_store, api_keys, integrity_service)
    key_files = KeyFileService(db, trail, key_store)
    keys = KeyService(
        db, trail, clock, key_store, object_store, signer, policy_enforcer, backups.lifecycle
    )
    backup_recovery = BackupRecoveryService(db, trail, clock, backups.lifecycle, restores)
    verification = VerificationService(
        db,
        trail,
        clock,
        object_store,
        key_store,
        backups.lifecycle,
        integrity_service,
        timedelta(seconds=settings.backup_lease_seconds),
    )
    return Services(
        settings=settings,
        clock=clock,
        db=db,
        key_store=key_store,
        object_store=object_store,
        trail=trail,
        notifications=notifications,
        auth=auth,
        api_keys=api_keys,
        policies=PolicyService(db, trail, clock),
        audit=AuditReader(db, trail),
        health=HealthService(db, object_store, key_store, clock),
        incidents=IncidentService(db, trail, clock, notifications),
        alerts=AlertService(
            db,
            trail,
            clock,
            notifications,
            timedelta(seconds=settings.alert_escalation_seconds),
        ),
        bootstrap=bootstrap,
        audit_validation=AuditValidationService(
            db,
            trail,
            signer,
            interval,
            anchor,
            workers=settings.audit_validation_workers,
            segment_entries=settings.audit_validation_segment_entries,
        ),
        audit_export=AuditExportService(db, trail, signer, clock, anchor),
        policy_enforcer=policy_enforcer,
        backups=backups,
        backup_recovery=backup_recovery,
        restores=restores,
        retention=RetentionService(db, trail, clock, auth, backups),
        key_files=key_files,
        integrity=integrity_service,
        keys=keys,
        metrics=MetricsService(db, clock),
        start_up=StartUp(integrity_service, bootstrap, key_files, keys, backup_recovery),
        verification=verification,
        console_sessions=ConsoleSessionService(
            db,
            trail,
            clock,
            integrity,
            auth,
            idle=timedelta(minutes=settings.console_idle_minutes),
            lifetime=timedelta(hours=settings.console_session_hours),
        ),
        console_overview=ConsoleOverviewService(db, clock, keys),
        webhooks=webhooks,
    )
