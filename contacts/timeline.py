"""A contact's story: one timeline of what happened to it, newest first, each item linked to its page; and, by
the same registry pattern, where a property or a mailing list is used (the "in use" warnings of the property
manager and of a list's delete confirmation).

The contacts app is below the apps that own most of that story (loops: events, runs, emails; webhooks: the
deliveries behind Stripe's events), so they register a source here from their AppConfig.ready, as webhooks
registers its trigger names with loops. A source returns at most `limit` items for one contact, newest first,
in a few queries; the timeline merges them.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from heapq import merge

from .models import Contact


@dataclass(frozen=True)
class Item:
    at: datetime
    kind: str  # event, delivery, run, step, email, open, click…: a CSS class and a filter
    title: str
    detail: str = ""
    url: str = ""


Source = Callable[[Contact, int], list[Item]]
_SOURCES: dict[str, Source] = {}
LIMIT = 100


def timeline_source_register(*, name: str, source: Source) -> None:
    _SOURCES[name] = source


def contact_timeline(*, contact: Contact, limit: int = LIMIT) -> list[Item]:
    """The newest `limit` items of every source, newest first."""
    parts = [sorted(source(contact, limit), key=lambda item: item.at, reverse=True) for source in _SOURCES.values()]
    return list(merge(*parts, key=lambda item: item.at, reverse=True))[:limit]


# --- where a property is used ------------------------------------------------------------------------

Uses = Callable[[int, str], list[tuple[str, str]]]  # (team id, property key) → [(what uses it, its URL)]
_USES: dict[str, Uses] = {}


def property_uses_register(*, name: str, source: Uses) -> None:
    """As the timeline's sources: the apps above contacts say where their objects use a property."""
    _USES[name] = source


def property_uses(*, team_id: int, key: str) -> list[tuple[str, str]]:
    return [use for source in _USES.values() for use in source(team_id, key)]


# --- where a mailing list is used --------------------------------------------------------------------

ListUses = Callable[[int, int], list[tuple[str, str]]]  # (team id, list id) → [(what uses it, its URL)]
_LIST_USES: dict[str, ListUses] = {}


def list_uses_register(*, name: str, source: ListUses) -> None:
    """As for a property: the apps above contacts say where their objects use a mailing list."""
    _LIST_USES[name] = source


def list_uses(*, team_id: int, list_id: int) -> list[tuple[str, str]]:
    return [use for source in _LIST_USES.values() for use in source(team_id, list_id)]
