"""Which database errors mean "the database is unavailable" (503 DATABASE_UNAVAILABLE): a
PostgreSQL server out of resources or going down, whatever the request — a full disk above
all (the disk-full cell of the fault matrix) — and not an error of the request or the code."""

import pytest
from sqlalchemy.exc import DBAPIError

from ssbg.infrastructure.db.database import is_unavailable


class _DriverError(Exception):
    """What the asyncpg adapter raises: the server's SQLSTATE in ``sqlstate``."""

    def __init__(self, sqlstate: str | None) -> None:
        super().__init__("a driver error")
        self.sqlstate = sqlstate


def _error(sqlstate: str | None) -> DBAPIError:
    return DBAPIError("INSERT INTO backup_metadata ...", None, _DriverError(sqlstate))


@pytest.mark.parametrize(
    "sqlstate",
    [
        "53100",  # disk_full: "could not extend file ...: No space left on device"
        "53200",  # out_of_memory
        "53300",  # too_many_connections
        "08006",  # connection_failure
        "57P01",  # admin_shutdown
        "57P03",  # cannot_connect_now (starting up, in recovery)
        "58030",  # io_error
        "25006",  # read_only_sql_transaction: a standby after a failover
    ],
)
def test_a_server_out_of_resources_or_going_down_is_unavailable(sqlstate: str) -> None:
    assert is_unavailable(_error(sqlstate))


@pytest.mark.parametrize(
    "sqlstate",
    [
        "23505",  # unique_violation: a race the code settles
        "22003",  # numeric_value_out_of_range: a bug or an unchecked input
        "42P01",  # undefined_table: the schema is not migrated
        "57014",  # query_canceled (a statement timeout)
        None,
    ],
)
def test_an_error_of_the_request_or_the_code_is_not(sqlstate: str | None) -> None:
    assert not is_unavailable(_error(sqlstate))
