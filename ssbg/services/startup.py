"""What every gateway process does before it serves, in order (one place for the order and
for which step may fail without stopping the process).

1. seal a database of an earlier version (once; ``IntegrityService``);
2. record ``SYSTEM_START`` for this replica;
3. rewrite key files of earlier versions (``KeyFileService``);
4. complete a crypto-shred an earlier process began (``KeyService``) — a refused one (a shred
   mark forged in the database, say) is logged and the gateway still starts;
5. fail backups and restores left behind by a dead process (``BackupRecoveryService``).
"""

from dataclasses import dataclass

import structlog

from ssbg.domain.errors import SsbgError
from ssbg.services.backup_recovery_service import BackupRecoveryService
from ssbg.services.bootstrap_service import BootstrapService
from ssbg.services.integrity_service import IntegrityService
from ssbg.services.key_file_service import KeyFileService
from ssbg.services.keys import KeyService

log = structlog.get_logger("ssbg.startup")


@dataclass(frozen=True, slots=True)
class StartUp:
    integrity: IntegrityService
    bootstrap: BootstrapService
    key_files: KeyFileService
    keys: KeyService
    recovery: BackupRecoveryService

    async def run(self, *, replica: str) -> None:
        await self.integrity.adopt_if_needed()
        await self.bootstrap.record_start(replica=replica)
        await self.key_files.upgrade_key_files(via="start-up")
        try:
            await self.keys.resume_interrupted_shreds()
        except SsbgError as exc:
            log.error("crypto_shred_not_resumed", code=exc.code)
        await self.recovery.sweep_once()
