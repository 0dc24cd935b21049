"""Write the evidence-bundle test vector: ``python -m tests.support.make_audit_vector OUT``.

A throwaway gateway (temporary SQLite database and key store, fixed clock, a checkpoint every
3 entries) records a few events chosen to exercise the canonical form — nested and non-ASCII
details, nulls, an IPv6 address — and exports its chain, as a bundle of the current format
(version 2: with the audit anchor in its header and a signed head; the committed
``audit-bundle-v1.jsonl`` was written by the same script before version 2). The events are a
minute apart, so each advances the audit anchor. The signing key is discarded: the vector is
checked with the public key in its header. ECDSA signatures are randomised, so each run writes
different bytes; the committed file is the reference.
"""

import asyncio
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from pydantic import SecretStr

from ssbg.domain.audit_events import AuditEvent
from ssbg.domain.audit_verification import SequenceRange
from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.domain.identity import Actor, RequestContext
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.infrastructure.db.migrate import upgrade
from ssbg.services.auth_service import principal_of
from ssbg.services.container import build_services
from ssbg.settings import Settings
from tests.support.clock import FixedClock

EVENTS = [
    AuditEvent(
        action=AuditAction.POLICY_CHECK_DENY,
        resource="backup:5b0e8c36-2f0a-4d8e-9a53-0f1e6b7c2d41",
        result=AuditResult.DENIED,
        actor_id=UUID("0b7f4a43-5c2e-4d57-9e3a-7f6f2d9c1a10"),
        actor_role="admin",
        details={"rule": "P4", "reason_category": "BUSINESS_HOURS", "hours": "08-18"},
        source_ip="2001:db8::7",
        request_id="req-vector-1",
    ),
    AuditEvent(
        action=AuditAction.BACKUP_COMPLETE,
        resource="backup:5b0e8c36-2f0a-4d8e-9a53-0f1e6b7c2d41",
        result=AuditResult.SUCCESS,
        actor_id=UUID("9c1d2e3f-4a5b-4c6d-8e7f-a0b1c2d3e4f5"),
        actor_role="operator",
        details={
            "source_system": "erp.prod-01",
            "original_filename": "Bücher_2026 ✓.tar",
            "sizes": {"original": 1048577, "encrypted": 1048673},
            "tags": ["nightly", None, True, -1],
        },
        source_ip="198.51.100.23",
        request_id=None,
    ),
    AuditEvent(
        action=AuditAction.AUTH_FAILURE,
        resource="system",
        result=AuditResult.DENIED,
        details={"reason": "UNKNOWN", "quote": 'a "quoted" \\ value\n'},
        source_ip="203.0.113.5",
        request_id="req-vector-3",
    ),
]


async def export_vector() -> bytes:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=root,
            key_password=SecretStr("vector-password-not-secret"),
            audit_checkpoint_interval=3,
        )
        await upgrade(settings.resolved_database_url)
        clock = FixedClock(datetime(2026, 11, 27, 9, 30, 0, 123456, tzinfo=UTC))
        key_store = FileKeyStore(settings.resolved_keystore_dir, "vector-password-not-secret")
        services = build_services(settings, clock=clock, key_store=key_store)
        try:
            issued = (await services.bootstrap.initialize()).issued
            assert issued is not None
            for event in EVENTS:
                clock.advance(seconds=61, microseconds=7)
                async with services.db.transaction(write=True) as tx:
                    await services.trail.append(tx, event)
            clock.advance(minutes=5)
            stream = await services.audit_export.export_bundle(
                Actor(
                    principal_of(issued.record),
                    RequestContext(request_id="req-vector-export", source_ip="192.0.2.10"),
                ),
                SequenceRange(),
            )
            return b"".join([chunk async for chunk in stream])
        finally:
            await services.close()


if __name__ == "__main__":
    Path(sys.argv[1]).write_bytes(asyncio.run(export_vector()))
