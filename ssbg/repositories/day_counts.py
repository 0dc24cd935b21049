"""Rows per day over a few days, in one statement on either database.

One ``SUM(CASE WHEN day_start <= column < next_day_start THEN 1 ELSE 0 END)`` per day: the
bounds are bound parameters of the column's own type, so the comparison is the one every other
time filter makes (no date functions, which differ between SQLite's text timestamps and
PostgreSQL's ``timestamptz``), and the column's index serves the outer range.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func
from sqlalchemy.orm import InstrumentedAttribute

Column = ColumnElement[Any] | InstrumentedAttribute[Any]

DAY = timedelta(days=1)


def per_day_columns(column: Column, day_starts: Sequence[datetime]) -> list[ColumnElement[Any]]:
    return [
        func.sum(case((and_(column >= start, column < start + DAY), 1), else_=0))
        for start in day_starts
    ]


def within(column: Column, day_starts: Sequence[datetime]) -> ColumnElement[bool]:
    return and_(column >= day_starts[0], column < day_starts[-1] + DAY)


def counts_of(row: Sequence[Any] | None, days: int) -> list[int]:
    """The sums of a ``per_day_columns`` row (``NULL`` when no row fell in the range)."""
    if row is None:
        return [0] * days
    return [int(value or 0) for value in row]
