"""Reads of the Audience: filtered, searched, keyset-paginated lists that stay fast on large teams."""

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet

from accounts.models import Team

from .models import Contact

PAGE_SIZE = 50


@dataclass(frozen=True)
class AudienceFilter:
    q: str = ""
    source: str = ""
    subscribed: str = ""  # "", "yes" or "no"
    oldest_first: bool = False


@dataclass(frozen=True)
class Page:
    contacts: list[Contact]
    next_cursor: str  # "" on the last page


def _encode(contact: Contact) -> str:
    raw = f"{contact.created_at.isoformat()}|{contact.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, int] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, _, pk = raw.partition("|")
        return datetime.fromisoformat(created), int(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None  # a mangled cursor starts from the first page


def audience_queryset(*, team: Team, filters: AudienceFilter) -> QuerySet[Contact]:
    contacts = Contact.objects.filter(team=team)
    q = filters.q.strip()
    if q:
        contacts = contacts.filter(Q(email__icontains=q) | Q(first_name__icontains=q) | Q(last_name__icontains=q))
    if filters.source:
        contacts = contacts.filter(source=filters.source)
    if filters.subscribed in {"yes", "no"}:
        contacts = contacts.filter(subscribed=filters.subscribed == "yes")
    return contacts


def audience_page(*, team: Team, filters: AudienceFilter, cursor: str = "", size: int = PAGE_SIZE) -> Page:
    """One page, newest (or oldest) first, continuing after `cursor`: a keyset, not an OFFSET, so page
    2,000 costs what page 1 costs."""
    contacts = audience_queryset(team=team, filters=filters)
    position = _decode(cursor) if cursor else None
    if filters.oldest_first:
        contacts = contacts.order_by("created_at", "id")
        if position:
            contacts = contacts.filter(Q(created_at__gt=position[0]) | Q(created_at=position[0], id__gt=position[1]))
    else:
        contacts = contacts.order_by("-created_at", "-id")
        if position:
            contacts = contacts.filter(Q(created_at__lt=position[0]) | Q(created_at=position[0], id__lt=position[1]))
    rows = list(contacts[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return Page(contacts=rows, next_cursor=_encode(rows[-1]) if more and rows else "")


def audience_sources(*, team: Team) -> list[str]:
    return list(
        Contact.objects.filter(team=team)
        .exclude(source="")
        .order_by("source")
        .values_list("source", flat=True)
        .distinct()[:50]
    )
