"""ORM models, one module per table; importing this package registers them all."""

from ssbg.infrastructure.db.models.alert import Alert
from ssbg.infrastructure.db.models.api_key import ApiKey
from ssbg.infrastructure.db.models.audit import (
    AuditChainHead,
    AuditCheckpoint,
    AuditLogEntry,
    AuditSigningKey,
)
from ssbg.infrastructure.db.models.backup_metadata import BackupMetadata, BackupStatusTransition
from ssbg.infrastructure.db.models.console_session import ConsoleSession
from ssbg.infrastructure.db.models.detection import (
    AuthFailureCount,
    AuthThrottleWindow,
    KeySourceAddress,
    RestoreVolumeDay,
)
from ssbg.infrastructure.db.models.incident import IncidentLevelChange
from ssbg.infrastructure.db.models.key_version import KeyVersion
from ssbg.infrastructure.db.models.notification import OutboxNotification
from ssbg.infrastructure.db.models.policy import Policy
from ssbg.infrastructure.db.models.restore_request import RestoreRequest
from ssbg.infrastructure.db.models.retention import RetentionRule, VerifyJob
from ssbg.infrastructure.db.models.system_state import SystemState

__all__ = [
    "Alert",
    "ApiKey",
    "AuditChainHead",
    "AuditCheckpoint",
    "AuditLogEntry",
    "AuditSigningKey",
    "AuthFailureCount",
    "AuthThrottleWindow",
    "BackupMetadata",
    "BackupStatusTransition",
    "ConsoleSession",
    "IncidentLevelChange",
    "KeySourceAddress",
    "KeyVersion",
    "OutboxNotification",
    "Policy",
    "RestoreRequest",
    "RestoreVolumeDay",
    "RetentionRule",
    "SystemState",
    "VerifyJob",
]
