"""What a gateway process that died mid-operation leaves in the database: a ``PROCESSING``
backup (with a partial object in the local store) or a ``VERIFYING`` restore request, each
with the lease its process last took — at the test clock's ``now``."""

import os
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from ssbg.domain.key_versions import FIRST_KEY_VERSION
from ssbg.infrastructure.db.models import BackupMetadata, BackupStatusTransition, RestoreRequest
from ssbg.infrastructure.storage.layout import backup_prefix, data_key, wrapped_dek_key
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services


async def leave_dead_upload(
    services: Services, owner: IssuedApiKey, now: datetime, lease: timedelta
) -> UUID:
    """A PROCESSING record whose lease was last renewed at ``now``, and a partial object."""
    backup_id = uuid4()
    async with services.db.transaction(write=True) as tx:
        await tx.backups.insert(
            BackupMetadata(
                id=backup_id,
                status="PROCESSING",
                classification="INTERNAL",
                source_system="db-1",
                content_type="application/octet-stream",
                key_version=FIRST_KEY_VERSION,
                format_version=1,
                segment_size=1024 * 1024,
                storage_backend="local",
                storage_ref=data_key(backup_id),
                wrapped_dek_ref=wrapped_dek_key(backup_id),
                created_by=owner.record.id,
                created_at=now,
                updated_at=now,
                lease_expires_at=now + lease,
                cleanup_pending=False,
            ),
            BackupStatusTransition(
                id=uuid4(),
                backup_id=backup_id,
                sequence=1,
                from_status=None,
                to_status="PROCESSING",
                at=now,
            ),
        )
    directory = services.settings.resolved_storage_path / backup_prefix(backup_id).rstrip("/")
    directory.mkdir(parents=True)
    (directory / ".data.enc.0123456789abcdef.partial").write_bytes(os.urandom(1000))
    return backup_id


async def leave_dead_verification(
    services: Services,
    requester: IssuedApiKey,
    backup_id: UUID | str,
    now: datetime,
    lease: timedelta,
) -> UUID:
    """A VERIFYING restore request of ``backup_id`` whose lease was last renewed at ``now``."""
    restore = RestoreRequest(
        id=uuid4(),
        backup_id=UUID(str(backup_id)),
        requested_by=requester.record.id,
        justification="INC-9: verified by a gateway that died",
        status="VERIFYING",
        mfa_verified=False,
        downloads=0,
        lease_expires_at=now + lease,
        created_at=now,
        updated_at=now,
    )
    async with services.db.transaction(write=True) as tx:
        await tx.restores.add(restore)
    return restore.id
