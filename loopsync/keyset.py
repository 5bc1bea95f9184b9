"""Keyset pagination for lists newest first: a page continues after (or before) the row a cursor names, not
at an OFFSET. So page 2,000 costs what page 1 costs, no COUNT runs, and rows that arrive between two clicks
(a busy Stripe account) never make a row repeat or go missing on the next page.

A cursor is the (time, id) of a row, url-safe base64; a mangled one starts from the first page.
"""

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import Q, QuerySet


def cursor_encode(when: datetime, pk: int) -> str:
    raw = f"{when.isoformat()}|{pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_decode(cursor: str) -> tuple[datetime, int] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, pk = raw.partition("|")
        position = datetime.fromisoformat(when)
        if position.tzinfo is None:
            return None  # cursor_encode always writes an offset
        # In UTC, as cursor_encode writes it: PostgreSQL refuses offsets past ±15:59, and SQLite's adapter
        # converts to UTC itself, raising OverflowError for 9999-12-31 at -05:00. Either would be a 500.
        return position.astimezone(UTC), int(pk)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        return None


def after(queryset: QuerySet, field: str, position: tuple[datetime, int], *, oldest_first: bool = False) -> QuerySet:
    """The rows after `position` in the list's order (newest first, or oldest first). The redundant
    `field <=`/`>=` bound is what makes this cheap: it is an index condition, where the OR alone would only
    filter the rows before the cursor one by one."""
    when, pk = position
    op = "gt" if oldest_first else "lt"
    beyond = Q(**{f"{field}__{op}": when}) | Q(**{field: when, f"id__{op}": pk})
    return queryset.filter(beyond, **{f"{field}__{op}e": when})


@dataclass(frozen=True)
class KeysetPage:
    """One page of a newest-first list, with the cursors of its neighbours ("" where there is none)."""

    rows: list[Any]
    older: str  # the next page, further back in time
    newer: str  # the previous page
    first: bool  # the newest page: nothing newer exists

    @property
    def object_list(self) -> list[Any]:  # what list templates iterate, as with Django's Page
        return self.rows

    @property
    def has_other_pages(self) -> bool:
        return bool(self.older or self.newer)


def newest_first_page(queryset: QuerySet, *, field: str, older: str = "", newer: str = "", size: int) -> KeysetPage:
    """A page of `queryset` ordered by (`field`, id) newest first: the rows just older than the cursor
    `older`, or just newer than the cursor `newer`, or else the newest."""
    position = cursor_decode(newer) if newer else None
    if position is not None:  # walking back towards the newest: the rows above, nearest first
        above = after(queryset.order_by(field, "id"), field, position, oldest_first=True)
        rows = list(above[: size + 1])
        if not rows:  # nothing is newer (a stale or made-up cursor): the newest page
            return newest_first_page(queryset, field=field, size=size)
        more_newer = len(rows) > size
        rows = list(reversed(rows[:size]))
        return KeysetPage(
            rows=rows,
            older=_cursor(rows[-1], field),
            newer=_cursor(rows[0], field) if more_newer else "",
            first=not more_newer,
        )
    position = cursor_decode(older) if older else None
    ordered = queryset.order_by(f"-{field}", "-id")
    if position is not None:
        ordered = after(ordered, field, position)
    rows = list(ordered[: size + 1])
    more_older = len(rows) > size
    rows = rows[:size]
    return KeysetPage(
        rows=rows,
        older=_cursor(rows[-1], field) if more_older and rows else "",
        newer=_cursor(rows[0], field) if position is not None and rows else "",
        first=position is None,
    )


def cursors(request) -> dict[str, str]:
    """The `older` / `newer` cursors of a list page's query string, for newest_first_page."""
    return {name: request.GET.get(name, "")[:200] for name in ("older", "newer")}


def _cursor(row: Any, field: str) -> str:
    return cursor_encode(getattr(row, field), row.pk)
