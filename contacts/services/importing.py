"""CSV import into a team's Audience.

1. `import_create` reads the upload once: UTF-8 (a byte-order mark is fine), a header row, at most IMPORT_MAX_ROWS
   rows and IMPORT_MAX_COLUMNS columns. It keeps the file (compressed), what its scan found (each column's
   samples and type, the first rows, the row count: the mapping page shows them without reading the file again)
   and proposes a mapping from the headers: Loops' sample columns (`Email`, `First Name`, `Last Name`,
   `User Group`, `Source`, `User Id`, and `Subscribed`) in any case or spacing; any other column becomes a
   property, typed by its values.
2. `import_start` takes the mapping (per column: a field, `property:<key>`, or "" to skip) and whether the
   import starts loops, declares the new properties, and queues it.
3. `import_run` (Celery, or the command) reads the file again and goes through its rows in batches, each in one
   transaction that also records where it is, so a worker that dies leaves it resumable (the sweep picks it up).
   It is claimed, saved, swept and handed over as every long job is (loopsync.jobs).

A row updates the contact with its userId, else the one with its email, else creates one (which needs an
email). An empty cell leaves a value as it is; a cell that is exactly `null` (any case) clears it. A row that
cannot be applied (no email, a bad email, a number that is not one…) is refused with its reason, and the rest
go on; the refused rows can be downloaded as CSV with their reasons.
"""

import csv
import io
import logging
import math
import re
import zlib
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Team
from loopsync import jobs, work

from ..billing import BILLING_PROPERTIES
from ..changes import changes_send, contact_state, state_changes
from ..models import Contact, ContactImport, ContactImportError, ContactProperty, UnsubscribedBy
from ..signals import contacts_created
from .editing import RESUBSCRIBABLE_BY_TEAM
from .exporting import cell_safe, cell_unsafe
from .properties import PROPERTY_KEY, RESERVED_KEYS, _properties_declare
from .syncing import ContactKey, contacts_lock

if TYPE_CHECKING:
    import _csv

logger = logging.getLogger(__name__)

IMPORT_MAX_BYTES = 50 * 1024 * 1024
IMPORT_MAX_ROWS = 500_000
IMPORT_MAX_COLUMNS = 200
BATCH_ROWS = 1_000
TASK_BUDGET_SECONDS = jobs.TASK_BUDGET_SECONDS
# Claimed, saved, swept and handed over as every long job is (loopsync.jobs)
IMPORTS = jobs.Jobs(
    ContactImport, task=work.RUN_CONTACT_IMPORT, stale_after=ContactImport.STALE_AFTER, label="Contact import"
)
SOURCE_DEFAULT = "CSV import"
PREVIEW_ROWS = 5

# The contact's fields a column can fill, with their labels and longest values
FIELDS = {
    "email": ("Email", 254),
    "first_name": ("First name", 150),
    "last_name": ("Last name", 150),
    "source": ("Source", 64),
    "subscribed": ("Subscribed", 5),
    "user_group": ("User group", 120),
    "user_id": ("User ID", 255),
}
# Headers, as `_header_key` folds them, that name a field
HEADERS = {
    "email": "email", "emailaddress": "email", "firstname": "first_name", "lastname": "last_name",
    "first": "first_name", "givenname": "first_name", "forename": "first_name",
    "last": "last_name", "surname": "last_name", "familyname": "last_name",
    "source": "source", "subscribed": "subscribed", "usergroup": "user_group", "userid": "user_id",
}  # fmt: skip
PROPERTY = "property:"
TRUE, FALSE = {"true", "yes", "1"}, {"false", "no", "0"}
INTEGER = re.compile(r"-?[0-9]+")
NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.]+(Z|[+-][0-9]{2}:?[0-9]{2})?)?")


class ImportError_(ValidationError):  # noqa: N801 - not the builtin ImportError
    """The file cannot be imported at all (not CSV, too big, no header): says why."""


# --- 1. the upload --------------------------------------------------------------------------------


def _header_key(header: str) -> str:
    return re.sub(r"[\s_\-]+", "", header).lower()


def property_key_for(header: str) -> str:
    """A property key from a column's header: "Plan name" → planName (empty if none can be made)."""
    words = [word.lower() if word.isupper() else word for word in re.findall(r"[A-Za-z0-9]+", header)]
    key = "".join(word if i == 0 else word[:1].upper() + word[1:] for i, word in enumerate(words))
    key = key[:1].lower() + key[1:]
    return key[:64] if PROPERTY_KEY.fullmatch(key[:64]) and key not in RESERVED_KEYS else ""


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportError_("The file is not UTF-8 text: save it from your spreadsheet as “CSV UTF-8”.") from None


def _rows(text: str) -> "_csv.Reader":
    csv.field_size_limit(settings.PROPERTY_VALUE_MAX_CHARS + 1)  # a longer cell is a csv.Error, named
    return csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))


def _delimiter(text: str) -> str:
    """A comma, or the semicolon or tab that the header row uses more (spreadsheets in many locales save those)."""
    header = text[: text.find("\n") if "\n" in text else 10_000]
    counts = {mark: header.count(mark) for mark in (",", ";", "\t")}
    return max(counts, key=lambda mark: (counts[mark], mark == ","))


@dataclass
class Column:
    """What a scan of the file learnt of a column: its header, a few values, the type they all fit."""

    header: str
    samples: list[str] = field(default_factory=list)
    number: bool = True
    boolean: bool = True
    date: bool = True
    seen: bool = False

    def add(self, value: str) -> None:
        value = value.strip()
        if not value or value.lower() == "null":
            return
        self.seen = True
        if len(self.samples) < PREVIEW_ROWS:
            self.samples.append(value[:80])
        if self.number and not (NUMBER.fullmatch(value) and len(value) <= 30):
            self.number = False
        if self.boolean and value.lower() not in (TRUE | FALSE) - {"1", "0"}:
            self.boolean = False
        if self.date and not ISO_DATE.fullmatch(value):
            self.date = False

    @property
    def type(self) -> str:
        if not self.seen:
            return ContactProperty.Type.STRING
        if self.boolean:
            return ContactProperty.Type.BOOLEAN
        if self.number:
            return ContactProperty.Type.NUMBER
        if self.date:
            return ContactProperty.Type.DATE
        return ContactProperty.Type.STRING


@dataclass(frozen=True)
class Scanned:
    """A column as the scan left it: its header, a few values, its type."""

    header: str
    samples: list[str]
    type: str


@dataclass(frozen=True)
class Scan:
    """What the upload's scan found: kept on the import (`ContactImport.scan`, with `columns` and `total`)."""

    columns: list[Scanned]
    total: int
    preview: list[list[str]]

    def kept(self) -> dict:
        """As the import keeps it (the headers are its `columns`, the row count its `total`); without NUL
        characters, which JSON in the database cannot hold (a row with one is refused when it is imported)."""
        return {
            "columns": [{"samples": _texts(column.samples), "type": column.type} for column in self.columns],
            "preview": [_texts(row) for row in self.preview],
        }

    @classmethod
    def of(cls, contact_import: ContactImport) -> "Scan":
        kept = contact_import.scan
        columns = [
            Scanned(header, found["samples"], found["type"])
            for header, found in zip(contact_import.columns, kept["columns"], strict=True)
        ]
        return cls(columns=columns, total=contact_import.total, preview=kept["preview"])


def _texts(cells: list[str]) -> list[str]:
    return [cell.replace("\x00", "") for cell in cells]


def _scan(text: str) -> Scan:
    reader = _rows(text)
    try:
        header = next(reader, None)
        if not header or not any(cell.strip() for cell in header):
            raise ImportError_("The file is empty: its first row names the columns (Email, First Name…).")
        if len(header) > IMPORT_MAX_COLUMNS:
            raise ImportError_(f"A file has at most {IMPORT_MAX_COLUMNS} columns; this one has {len(header):,}.")
        columns = [Column(cell.replace("\x00", "").strip()[:120]) for cell in header]
        total, preview = 0, list[list[str]]()
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # a blank line
            total += 1
            if total > IMPORT_MAX_ROWS:
                raise ImportError_(f"A file has at most {IMPORT_MAX_ROWS:,} rows: split it in parts.")
            if len(preview) < PREVIEW_ROWS:
                preview.append([cell[:80] for cell in row[: len(columns)]])
            for column, cell in zip(columns, row, strict=False):
                column.add(cell)
    except csv.Error as exc:
        raise ImportError_(f"The file is not CSV, or a cell is too long, on line {reader.line_num}: {exc}") from None
    if total == 0:
        raise ImportError_("The file has a header but no rows.")
    return Scan([Scanned(column.header, column.samples, column.type) for column in columns], total, preview)


def mapping_proposed(*, team: Team, columns: Sequence[Scanned]) -> list[str]:
    """A target per column, from its header: a field, a property (declared, built in, or new), or "" (skip:
    a header that makes no property name, or a second column for the same target)."""
    declared = set(ContactProperty.objects.filter(team=team).values_list("key", flat=True))
    taken: set[str] = set()
    mapping = []
    refused_rows = [column.header for column in columns[:2]] == ["Line", "Reason"]  # our refused-rows file, fixed
    for index, column in enumerate(columns):
        if refused_rows and index < 2:
            mapping.append("")
            continue
        target = HEADERS.get(_header_key(column.header), "")
        if not target:
            folded = {_header_key(key): key for key in declared | set(BILLING_PROPERTIES)}
            key = folded.get(_header_key(column.header)) or property_key_for(column.header)
            target = f"{PROPERTY}{key}" if key else ""
        if target in taken:
            target = ""
        taken.add(target)
        mapping.append(target)
    return mapping


def import_create(*, team: Team, user, filename: str, raw: bytes) -> ContactImport:
    """Read and keep an uploaded file, with the mapping its headers suggest. Raises ImportError_ saying why a
    file cannot be imported."""
    if len(raw) > IMPORT_MAX_BYTES:
        raise ImportError_(f"A file is at most {IMPORT_MAX_BYTES // 1024 // 1024} MB.")
    scan = _scan(_decode(raw))
    columns = [column.header for column in scan.columns]
    contact_import = ContactImport.objects.create(
        team=team,
        created_by=user if getattr(user, "pk", None) else None,
        filename=filename[:255] or "contacts.csv",
        data=zlib.compress(raw, 6),
        columns=columns,
        mapping=mapping_proposed(team=team, columns=scan.columns),
        total=scan.total,
        scan=scan.kept(),
    )
    return contact_import


def import_scan(contact_import: ContactImport) -> Scan:
    """What the upload's scan found: the columns, their samples and types, the first rows (the mapping page and
    `import_start`; neither reads the file). An upload kept before its scan was (`scan` empty) is scanned once
    more, and that is kept."""
    if not contact_import.scan:
        scan = _scan(_decode(zlib.decompress(contact_import.data)))
        contact_import.scan = scan.kept()
        ContactImport.objects.filter(pk=contact_import.pk).update(scan=contact_import.scan)
    return Scan.of(contact_import)


def targets(*, team: Team) -> list[tuple[str, str]]:
    """What a column can fill: the fields, then the team's properties (declared and built in)."""
    declared = ContactProperty.objects.filter(team=team).values_list("key", "label")
    properties = sorted({*((key, label or key) for key, label in declared), *((k, k) for k in BILLING_PROPERTIES)})
    return [(name, label) for name, (label, _) in FIELDS.items()] + [
        (f"{PROPERTY}{key}", f"Property: {label}") for key, label in properties
    ]


# --- 2. starting it ----------------------------------------------------------------------------------


def import_start(
    *, contact_import: ContactImport, mapping: list[str], trigger_loops: bool, in_celery: bool = True
) -> ContactImport:
    """Check the mapping (per column: a field, `property:<key>` or ""), declare its new properties, typed by their
    column's values, and queue the import. Raises ValidationError saying what is wrong with the mapping."""
    if contact_import.status != ContactImport.Status.MAPPING:
        raise ValidationError("This import has started already.")
    columns = contact_import.columns
    if len(mapping) != len(columns):
        raise ValidationError("Map every column (or skip it).")
    problems, chosen = [], [target for target in mapping if target]
    for target in chosen:
        if target.startswith(PROPERTY):
            key = target.removeprefix(PROPERTY)
            if not PROPERTY_KEY.fullmatch(key) or key in RESERVED_KEYS:
                problems.append(f"“{key[:64]}” is not a property name: letters, digits and _, starting with a letter.")
        elif target not in FIELDS:
            problems.append(f"“{target[:64]}” is not a field.")
    doubled = sorted({target for target in chosen if chosen.count(target) > 1})
    if doubled:
        problems.append("Two columns fill the same field: " + ", ".join(doubled) + ".")
    if "email" not in chosen and "user_id" not in chosen:
        problems.append("Map a column to Email (or to User ID, to update contacts you have).")
    if problems:
        raise ValidationError(problems)
    scan = import_scan(contact_import)
    types = {
        target.removeprefix(PROPERTY): scan.columns[index].type
        for index, target in enumerate(mapping)
        if target.startswith(PROPERTY)
    }
    team = contact_import.team
    with transaction.atomic():
        known = set(ContactProperty.objects.filter(team=team, key__in=list(types)).values_list("key", flat=True))
        new = {key: kind for key, kind in types.items() if key not in known and key not in BILLING_PROPERTIES}
        if new:
            _properties_declare(team=team, types=new, values={})
        started = ContactImport.objects.filter(pk=contact_import.pk, status=ContactImport.Status.MAPPING).update(
            mapping=mapping, trigger_loops=trigger_loops, status=ContactImport.Status.QUEUED
        )
        if not started:
            raise ValidationError("This import has started already.")
        if in_celery:
            work.enqueue_on_commit(work.RUN_CONTACT_IMPORT, contact_import.pk)  # down: the sweep starts it later
    contact_import.refresh_from_db()
    return contact_import


def imports_sweep() -> int:
    """Start imports whose task was lost: queued ones nobody took, running ones whose worker died."""
    return IMPORTS.sweep()


# --- 3. running it -----------------------------------------------------------------------------------


def import_run(*, import_id: int, budget_seconds: float | None = None) -> str:
    """Go on with an import from where it is, for `budget_seconds` (None: to the end). Returns its status:
    "queued" when the budget ran out (the caller hands over), "done", "failed", or "" when another worker
    holds it."""
    claim = IMPORTS.claim(import_id)
    if claim is None:
        return ""
    contact_import = ContactImport.objects.select_related("team").get(pk=import_id)
    contact_import.claim = claim
    deadline = jobs.deadline(budget_seconds)
    try:
        plan = _Plan.of(contact_import)
        rows = _rows(_decode(zlib.decompress(contact_import.data)))
        next(rows)  # the header
        batch: list[tuple[int, list[str]]] = []
        seen = 0
        for row in rows:
            if not any(cell.strip() for cell in row):
                continue
            seen += 1
            if seen <= contact_import.done:
                continue
            batch.append((rows.line_num, row))
            if len(batch) == BATCH_ROWS:
                _batch_run(contact_import, plan, batch)
                batch = []
                if jobs.past(deadline):
                    return _save(contact_import, ContactImport.Status.QUEUED)
        if batch:
            _batch_run(contact_import, plan, batch)
    except jobs.Lost:  # another worker took it over: the batch was undone
        return ""
    except work.TEMPORARY_ERRORS:
        _save(contact_import, ContactImport.Status.QUEUED, "Paused on a database or broker error; it goes on.")
        raise
    except Exception as exc:  # a fault of ours: say so rather than loop on it
        logger.exception("Contact import %s stopped", import_id)
        return _save(contact_import, ContactImport.Status.FAILED, f"Stopped on an error: {type(exc).__name__}")
    return _save(contact_import, ContactImport.Status.DONE)


def _save(contact_import: ContactImport, status: str, error: str = "") -> str:
    """The end of a turn. A worker that lost the import meanwhile changes nothing (its batches were saved)."""
    with suppress(jobs.Lost):
        IMPORTS.save(contact_import.pk, contact_import.claim, status=status, error=error)
    contact_import.status = status
    return status


@dataclass(frozen=True)
class _Plan:
    """The mapping, resolved: which column fills which field, and each property column's key and type."""

    fields: dict[str, int]  # field → column
    properties: dict[str, tuple[int, str]]  # key → (column, type)

    @classmethod
    def of(cls, contact_import: ContactImport) -> "_Plan":
        fields, properties = {}, {}
        declared = dict(ContactProperty.objects.filter(team=contact_import.team).values_list("key", "type"))
        declared.update(BILLING_PROPERTIES)
        for index, target in enumerate(contact_import.mapping):
            if target.startswith(PROPERTY):
                key = target.removeprefix(PROPERTY)
                properties[key] = (index, declared.get(key, ContactProperty.Type.STRING))
            elif target in FIELDS:
                fields[target] = index
        return cls(fields, properties)


class _Refused(Exception):
    pass


@dataclass
class _Row:
    line: int
    cells: list[str]
    values: dict[str, Any]  # field → value (None: clear); absent: leave as it is
    properties: dict[str, Any]  # key → value (None: clear)


def _cell(cells: list[str], index: int) -> str | None:
    """The cell, stripped (and without the apostrophe an export puts before a formula-like text:
    contacts.services.exporting); "" when empty (leave the value), None for a literal null (clear it)."""
    value = cell_unsafe(cells[index].strip()) if index < len(cells) else ""
    if "\x00" in value:
        raise _Refused("A cell holds a NUL character, which no text can.")
    return None if value.lower() == "null" else value


def _parse(line: int, cells: list[str], plan: _Plan) -> _Row:
    values: dict[str, Any] = {}
    for name, index in plan.fields.items():
        value = _cell(cells, index)
        if value == "":
            continue
        label, longest = FIELDS[name]
        if value is not None and len(value) > longest:
            raise _Refused(f"{label} is at most {longest} characters.")
        if name == "email":
            if value is None:
                raise _Refused("Email cannot be cleared.")
            try:
                validate_email(value)
            except ValidationError:
                raise _Refused(f"“{value[:60]}” is not an email address.") from None
        if name == "subscribed":
            if value is None or value.lower() not in TRUE | FALSE:
                raise _Refused("Subscribed is true or false.")
            values[name] = value.lower() in TRUE
            continue
        values[name] = "" if value is None else value
    properties: dict[str, Any] = {}
    for key, (index, kind) in plan.properties.items():
        value = _cell(cells, index)
        if value == "":
            continue
        properties[key] = None if value is None else _typed(key, value, kind)
    return _Row(line, cells, values, properties)


def _typed(key: str, value: str, kind: str) -> Any:
    if len(value) > settings.PROPERTY_VALUE_MAX_CHARS:
        raise _Refused(f"{key}: a value is at most {settings.PROPERTY_VALUE_MAX_CHARS:,} characters.")
    if kind == ContactProperty.Type.NUMBER:
        if not (NUMBER.fullmatch(value) and len(value) <= 30):
            raise _Refused(f"{key} is a number: “{value[:40]}” is not one.")
        if INTEGER.fullmatch(value):
            return int(value)
        number = float(value)
        if not math.isfinite(number):
            raise _Refused(f"{key}: “{value[:40]}” is out of range.")
        return number
    if kind == ContactProperty.Type.BOOLEAN:
        if value.lower() not in TRUE | FALSE:
            raise _Refused(f"{key} is true or false: “{value[:40]}” is neither.")
        return value.lower() in TRUE
    if kind == ContactProperty.Type.DATE:
        if INTEGER.fullmatch(value) and 10 <= len(value) <= 15:  # Unix seconds or ms, as the API takes (and exports)
            return int(value)
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _Refused(f"{key} is a date (YYYY-MM-DD): “{value[:40]}” is not one.") from None
    return value


UPDATED_FIELDS = [*FIELDS, "properties", "unsubscribed_by", "unsubscribed_at", "updated_at"]


def _batch_run(contact_import: ContactImport, plan: _Plan, batch: list[tuple[int, list[str]]]) -> None:
    """One batch, in one transaction with the import's progress: so a batch is applied once, or not at all."""
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                return _batch_apply(contact_import, plan, batch)
        except IntegrityError:  # a contact created meanwhile by another writer: look the batch up again
            if attempt == 2:
                raise


def _batch_apply(contact_import: ContactImport, plan: _Plan, batch: list[tuple[int, list[str]]]) -> None:
    team = contact_import.team
    rows, refused = [], []
    for line, cells in batch:
        try:
            rows.append(_parse(line, cells, plan))
        except _Refused as exc:
            refused.append((line, str(exc), cells))
    emails = sorted({row.values["email"].lower() for row in rows if row.values.get("email")})
    user_ids = sorted({row.values["user_id"] for row in rows if row.values.get("user_id")})
    # The contacts matched by userId are locked with those matched by email, in one id-ordered statement: two
    # imports (or an import and a Stripe batch) take their locks in the same order and cannot deadlock. One that
    # gets a userId between the look-up and the lock makes the insert or update fail, and the batch is run again.
    by_id = (
        Contact.objects.filter(team=team, livemode=True, user_id__in=user_ids).values_list("pk", flat=True)
        if user_ids
        else []
    )
    locked = contacts_lock(keys=[ContactKey(team_id=team.pk, livemode=True, emails=tuple(emails))], ids=list(by_id))
    by_email = {contact.email.lower(): contact for contact in locked}
    by_user_id = {contact.user_id: contact for contact in locked if contact.user_id}
    before: dict[int, dict] = {}  # id → state before the batch, for the changes the loops see
    touched: dict[int, Contact] = {}
    new: list[Contact] = []
    now = timezone.now()
    for row in rows:
        email, user_id = row.values.get("email", ""), row.values.get("user_id", "")
        contact = (by_user_id.get(user_id) if user_id else None) or (by_email.get(email.lower()) if email else None)
        try:
            if contact is None:
                if not email:
                    raise _Refused("No contact has this User ID, and a new one needs an email.")
                source = "" if "source" in plan.fields else SOURCE_DEFAULT  # a Source column, even empty, says
                contact = Contact(team=team, livemode=True, email=email, source=source, created_at=now)
                new.append(contact)
            elif contact.pk is not None and contact.pk not in before:
                before[contact.pk] = contact_state(contact)
            _row_apply(contact, row, by_email, by_user_id, now)
        except _Refused as exc:
            refused.append((row.line, str(exc), row.cells))
            continue
        by_email[contact.email.lower()] = contact
        if contact.user_id:
            by_user_id[contact.user_id] = contact
        if contact.pk is not None:
            touched[contact.pk] = contact
    changed = [(contact, state_changes(before[pk], contact)) for pk, contact in touched.items()]
    updated = [contact for contact, changes in changed if changes]
    if new:
        Contact.objects.bulk_create(new)
    if updated:
        for contact in updated:
            contact.updated_at = now
        Contact.objects.bulk_update(updated, UPDATED_FIELDS)
    if contact_import.trigger_loops:
        if new:
            contacts_created.send(sender=Contact, contacts=new)
        changes_send(changed)
    kept = ContactImportError.objects.filter(contact_import=contact_import).count()
    room = max(0, ContactImport.ERRORS_KEPT - kept)
    ContactImportError.objects.bulk_create(
        [
            ContactImportError(
                contact_import=contact_import,
                line=line,
                reason=reason[:300],
                cells=[cell.replace("\x00", "") for cell in cells[:IMPORT_MAX_COLUMNS]],  # JSON holds no NUL
            )
            for line, reason, cells in sorted(refused)[:room]
        ]
    )
    contact_import.done += len(batch)
    contact_import.created += len(new)
    contact_import.updated += len(updated)
    contact_import.unchanged += len(changed) - len(updated)
    contact_import.failed += len(refused)
    IMPORTS.save(  # Lost: another worker took the import over, and this batch is undone
        contact_import.pk,
        contact_import.claim,
        done=contact_import.done,
        created=contact_import.created,
        updated=contact_import.updated,
        unchanged=contact_import.unchanged,
        failed=contact_import.failed,
    )


def _row_apply(
    contact: Contact, row: _Row, by_email: dict[str, Contact], by_user_id: dict[str, Contact], now: datetime
) -> None:
    email, user_id = row.values.get("email"), row.values.get("user_id")
    if email and email.lower() != contact.email.lower() and by_email.get(email.lower()) not in (None, contact):
        raise _Refused(f"{email[:60]} is another contact's email.")
    if user_id and user_id != contact.user_id and by_user_id.get(user_id) not in (None, contact):
        raise _Refused(f"User ID {user_id[:60]} is another contact's.")
    for name, value in row.values.items():
        if name == "subscribed":
            if value and not contact.subscribed and contact.unsubscribed_by not in RESUBSCRIBABLE_BY_TEAM:
                continue  # as on the contact's page: who unsubscribed with the link (or before that was recorded,
                # or was unsubscribed by Stripe) is not resubscribed by a team member's file
            if value != contact.subscribed:
                contact.subscribed = value
                contact.unsubscribed_by = "" if value else UnsubscribedBy.TEAM
                contact.unsubscribed_at = None if value else now
        elif name == "email":
            if contact.email.lower() != value.lower():  # the same address in another case changes nothing
                contact.email = value
        else:
            setattr(contact, name, value)
    if row.properties:
        properties = dict(contact.properties or {})
        for key, value in row.properties.items():
            if value is None:
                properties.pop(key, None)
            else:
                properties[key] = value
        contact.properties = properties


def import_errors_rows(contact_import: ContactImport) -> Iterator[list[str]]:
    """The refused rows as CSV rows: the file's header and a Line and a Reason column, then each row."""
    yield ["Line", "Reason", *(cell_safe(column) for column in contact_import.columns)]
    for error in ContactImportError.objects.filter(contact_import=contact_import).iterator(chunk_size=2000):
        yield [str(error.line), cell_safe(error.reason), *(cell_safe(str(cell)) for cell in error.cells)]
