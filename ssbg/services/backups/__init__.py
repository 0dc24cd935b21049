"""Backups (SPEC §3, §5, §6): ingest, lifecycle, reads and deletion, one module each."""

from ssbg.services.backups.idempotency import BackupSubmission
from ssbg.services.backups.lifecycle import BackupLifecycle
from ssbg.services.backups.reads import BackupPage, BackupStatusView
from ssbg.services.backups.service import BackupService

__all__ = [
    "BackupLifecycle",
    "BackupPage",
    "BackupService",
    "BackupStatusView",
    "BackupSubmission",
]
