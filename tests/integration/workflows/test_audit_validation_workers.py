"""A validation worker that cannot read its segment fails the validation closed: the error
crosses the process boundary as what it is, never as a valid (or an invalid) chain."""

from pathlib import Path

import pytest

from ssbg.domain.audit_verification import HeadRef
from ssbg.domain.errors import DatabaseUnavailable
from ssbg.services.audit_validation_service import SegmentJob, check_segments
from tests.support.processes import free_port


def job(database_url: str, first: int, last: int, *, final: bool) -> SegmentJob:
    return SegmentJob(
        database_url=database_url,
        trusted_public_keys=[],
        checkpoint_interval=1000,
        range_start=1,
        first=first,
        last=last,
        anchor_hash=None,
        previous_checkpoint=None,
        final=final,
        to_head=final,
        head=HeadRef(sequence=last, hash="0" * 128),
    )


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
async def test_a_worker_that_cannot_read_fails_the_validation_closed(
    database: str, tmp_path: Path
) -> None:
    url = (
        f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere"
        if database == "postgresql"
        else f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'ssbg.db'}"
    )

    with pytest.raises(DatabaseUnavailable):
        await check_segments([job(url, 1, 10, final=False), job(url, 11, 20, final=True)])
