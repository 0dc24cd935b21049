"""Putting a stored row into a state no API call reaches directly, as the gateway itself would
write it: through the ORM, so its seal is recomputed (``ssbg.repositories.sealing``).

This is test set-up, not an attack: a writer of the database without the key store cannot do
this, and ``tests/integration/workflows/test_untrusted_database.py`` shows what happens when
one tries.
"""

from typing import Any

from ssbg.infrastructure.db.base import Sealed
from ssbg.services.container import Services


async def set_fields(services: Services, model: type[Sealed], key: Any, **values: Any) -> None:
    async with services.db.transaction(write=True) as tx:
        row = await tx.session.get(model, key)
        assert row is not None, (model, key)
        for name, value in values.items():
            setattr(row, name, value)
