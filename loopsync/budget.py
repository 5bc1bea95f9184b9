"""Reads bounded in time: a page's aggregate over a team's whole history (a count, a chart) runs under PostgreSQL's
statement_timeout for its own statements only, so a team of millions never holds a page (or a database
connection) up. Past the budget the read gives None and the page says so."""

from collections.abc import Callable
from typing import TypeVar

from django.db import OperationalError, connection, transaction

T = TypeVar("T")


def within_budget(read: Callable[[], T], *, milliseconds: int) -> T | None:
    """`read()`, each of its statements limited to `milliseconds`; None when one ran out (it is canceled, its
    savepoint rolled back, the connection fine). Without PostgreSQL (SQLite, development) it just runs."""
    if connection.vendor != "postgresql":
        return read()
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL statement_timeout = %s", [milliseconds])
            return read()
    except OperationalError:
        return None
