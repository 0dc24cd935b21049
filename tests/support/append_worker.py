"""A separate OS process appending audit entries: ``python -m tests.support.append_worker``.

Arguments: database URL, number of appends, worker name, a "go" file to wait for (so all
workers start appending at the same moment).
"""

import asyncio
import sys
import time
from pathlib import Path

from ssbg.domain.audit_events import SYSTEM_RESOURCE, AuditEvent
from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.infrastructure.clock import SystemClock
from ssbg.services.audit_service import AuditTrail
from ssbg.services.unit_of_work import Database


def wait_for(go_file: Path) -> None:
    """A start barrier (so every worker appends at once), not a timing assumption."""
    while not go_file.exists():
        time.sleep(0.01)


async def main(url: str, count: int, worker: str, go_file: Path) -> None:
    db = Database(url, pool_size=1)
    trail = AuditTrail(SystemClock())
    await db.ping()
    await asyncio.to_thread(wait_for, go_file)
    for n in range(count):
        async with db.transaction(write=True) as tx:
            await trail.append(
                tx,
                AuditEvent(
                    action=AuditAction.SYSTEM_START,
                    resource=SYSTEM_RESOURCE,
                    result=AuditResult.SUCCESS,
                    details={"worker": worker, "n": n},
                ),
            )
    await db.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])))
