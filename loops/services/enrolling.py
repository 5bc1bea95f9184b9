"""Starting runs: which loops a trigger enrols a contact in, and how often (a loop's frequency).

A run is unique per (loop, contact, entry key), by constraint, and the key says how often a contact enters:
- once per contact: "once";
- every time: "event:<id>" for an event, a fresh "at:<uuid>" for an update or a list;
- once per key: "key:<value>" of the event property the loop names (`invoice_id`: one run per invoice, however
  often Stripe retries it). An event without that property enrols as "every time" would.
"""

import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.utils import timezone

from contacts.models import Contact
from loopsync import work

from ..models import Event, Loop, LoopRun

KEY_MAX = 280  # LoopRun.entry_key holds "key:" and this much of the value


def entry_key(loop: Loop, *, event: Event | None = None) -> str:
    if loop.trigger == Loop.Trigger.CONTACT_ADDED or loop.frequency == Loop.Frequency.ONCE:
        return "once"
    if loop.frequency == Loop.Frequency.PER_KEY and event is not None:
        value = (event.properties or {}).get(loop.frequency_key)
        if value not in (None, ""):
            return f"key:{str(value)[:KEY_MAX]}"
    if event is not None:
        return f"event:{event.pk}"
    return f"at:{uuid.uuid4().hex}"


# The loops behind the change being announced, while an "Update contact" step makes it: the run's loop and the
# loops whose changes started that run, and so on back (each run keeps them: `via` in its first history entry).
# None of them is started by the change, so a loop that changes what it watches cannot feed itself, and loops
# cannot start one another in a circle.
_changing: ContextVar[tuple[int, ...]] = ContextVar("loops_changing", default=())


@contextmanager
def changes_made_by(run: LoopRun) -> Iterator[None]:
    """Changes made inside this block are the run's (its Update contact step)."""
    token = _changing.set((*run_via(run), run.loop_id))
    try:
        yield
    finally:
        _changing.reset(token)


def run_via(run: LoopRun) -> tuple[int, ...]:
    """The loops whose changes started this run (none for a run an event or a person started)."""
    first = run.history[0] if run.history else {}
    return tuple(first.get("via", ())) if isinstance(first, dict) else ()


def enrolled(now: datetime, what: str = "enrolled") -> list[dict[str, Any]]:
    entry: dict[str, Any] = {"at": now.isoformat(), "step": None, "what": what}
    if _changing.get():
        entry["via"] = list(_changing.get())
    return [entry]


def new_run(
    loop: Loop, contact_id: int, *, event: Event | None = None, now: datetime, what: str = "enrolled"
) -> LoopRun:
    return LoopRun(
        team_id=loop.team_id,
        loop=loop,
        contact_id=contact_id,
        event=event,
        entry_key=entry_key(loop, event=event),
        next_due_at=now,
        history=enrolled(now, what),
    )


def runs_start_many(runs: list[LoopRun]) -> int:
    """Insert the runs that are not there yet (by their entry key) and wake the runs drain. Returns how many
    were asked for."""
    if runs:
        LoopRun.objects.bulk_create(runs, ignore_conflicts=True)  # entered already: nothing happens again
        work.wake_on_commit(work.DRAIN_RUNS)
    return len(runs)


def _active(trigger: str, team_ids: Iterable[int]) -> dict[int, list[Loop]]:
    loops: dict[int, list[Loop]] = defaultdict(list)
    for loop in Loop.objects.filter(Q(team_id__in=set(team_ids)), status=Loop.Status.ACTIVE, trigger=trigger):
        loops[loop.team_id].append(loop)
    return loops


def contacts_added(*, contacts: list[Contact]) -> int:
    """New contacts, from any source: enrol each in its team's active "Contact added" loops, once."""
    if not contacts:
        return 0
    loops = _active(Loop.Trigger.CONTACT_ADDED, (c.team_id for c in contacts))
    now = timezone.now()
    return runs_start_many([new_run(loop, c.pk, now=now) for c in contacts for loop in loops[c.team_id]])


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def change_matches(loop: Loop, changes: dict[str, tuple[Any, Any]]) -> bool:
    """Does this change start the "Contact updated" loop: any change, or its field, from and to its values
    (compared as text, case-insensitively; a value that is not set is "")?"""
    if not loop.trigger_field:
        return bool(changes)
    if loop.trigger_field not in changes:
        return False
    old, new = (_as_text(v).strip().lower() for v in changes[loop.trigger_field])
    if loop.trigger_from_set and old != loop.trigger_from.strip().lower():
        return False
    return not (loop.trigger_to_set and new != loop.trigger_to.strip().lower())


def contacts_updated(*, changes: list[tuple[Contact, dict[str, tuple[Any, Any]]]]) -> int:
    """Contacts whose fields or properties changed: enrol them in the matching "Contact updated" loops."""
    loops = _active(Loop.Trigger.CONTACT_UPDATED, (contact.team_id for contact, _ in changes))
    now, behind = timezone.now(), set(_changing.get())
    runs = [
        new_run(loop, contact.pk, now=now, what="enrolled: " + ", ".join(sorted(changed))[:200])
        for contact, changed in changes
        for loop in loops[contact.team_id]
        if loop.id not in behind and change_matches(loop, changed)
    ]
    return runs_start_many(runs)


def lists_joined(*, contacts: list[Contact], list_ids: list[int]) -> int:
    """Contacts of one team joined these lists: enrol them in the "Added to a mailing list" loops of each, with one
    look-up of the loops however many contacts there are."""
    if not contacts:
        return 0
    loops = _active(Loop.Trigger.LIST_ADDED, [contacts[0].team_id])[contacts[0].team_id]
    now, behind = timezone.now(), set(_changing.get())
    wanted = set(list_ids)
    chosen = [loop for loop in loops if loop.trigger_list_id in wanted and loop.id not in behind]
    return runs_start_many([new_run(loop, contact.pk, now=now) for contact in contacts for loop in chosen])
