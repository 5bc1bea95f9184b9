"""CSV export of an Audience (or any filter of it): every field and property, streamed row by row, in the
columns an import maps back by name (contacts.services.importing), so exporting what was imported gives the
same file.

A text cell that a spreadsheet would run as a formula (it starts with =, +, -, @, a tab or a carriage return)
is written with a leading apostrophe, as OWASP advises; the import takes that apostrophe off again.
"""

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import QuerySet

from accounts.models import Team

from ..billing import BILLING_PROPERTIES
from ..models import Contact, ContactProperty

COLUMNS = [
    ("Email", "email"),
    ("First Name", "first_name"),
    ("Last Name", "last_name"),
    ("Source", "source"),
    ("Subscribed", "subscribed"),
    ("User Group", "user_group"),
    ("User Id", "user_id"),
]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CHUNK_ROWS = 2_000


def _formula_like(value: str) -> bool:
    """Starts as a formula, after any apostrophes: so a value that itself starts "'=" gets one more, and the
    import, which takes exactly one off, gives it back as it was."""
    return value.lstrip("'").startswith(FORMULA_START)


def cell_safe(value: str) -> str:
    """A text cell a spreadsheet shows as text, never runs."""
    return "'" + value if _formula_like(value) else value


def cell_unsafe(value: str) -> str:
    """What `cell_safe` wrote, back (the import's side)."""
    return value[1:] if value.startswith("'") and _formula_like(value) else value


def property_keys(*, team: Team) -> list[str]:
    """The property columns: the team's declared properties and the built-in billing ones, by key."""
    declared = ContactProperty.objects.filter(team=team).values_list("key", flat=True)
    return sorted({*declared, *BILLING_PROPERTIES})


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)  # a number is never a formula, and "-5" stays -5
    return cell_safe(str(value))


class _Line:
    """csv.writer's file: keeps the last line written, to yield it."""

    value = ""

    def write(self, text: str) -> None:
        self.value = text


def csv_lines(rows: Iterable[list[str]]) -> Iterator[str]:
    """Rows as CSV text, a line at a time (for a StreamingHttpResponse or a command's output)."""
    line = _Line()
    writer = csv.writer(line)
    for row in rows:
        writer.writerow(row)
        yield line.value


def contacts_rows(*, team: Team, contacts: QuerySet[Contact]) -> Iterator[list[str]]:
    """The header, then one row per contact, read in chunks (a server-side cursor on PostgreSQL)."""
    keys = property_keys(team=team)
    yield [header for header, _ in COLUMNS] + keys
    fields = [name for _, name in COLUMNS]
    for values in contacts.order_by("id").values_list(*fields, "properties").iterator(chunk_size=CHUNK_ROWS):
        *standard, properties = values
        properties = properties or {}
        yield [_text(value) for value in standard] + [_text(properties.get(key)) for key in keys]
