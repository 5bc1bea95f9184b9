"""`event_fire` for a batch (a drain's Stripe events), in a few statements instead of a few
per event: the same events, runs and wake-ups, with the same once-only keys."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from contacts.models import Contact
from loopsync import work

from ..models import Event, Loop, LoopRun
from .enrolling import new_run


@dataclass(frozen=True)
class Fire:
    """One event to fire: what `event_fire` takes. The key is required: a batch fires each key once."""

    contact: Contact
    name: str
    idempotency_key: str
    properties: dict[str, Any]
    source: str = ""
    occurred_at: datetime | None = None


def events_fire_many(*, fires: list[Fire]) -> list[Event]:
    """Record each fire whose key its team has not fired yet (the first of a key in the batch wins), enrol its
    contact in the team's active loops triggered by its name, and wake the runs of its contact waiting for it.
    Returns the events created now. Statements: one to find the keys already fired, one to insert the events,
    one for the loops, one to insert the runs and two for the waiting runs (when there are any)."""
    if not fires:
        return []
    team_ids = {fire.contact.team_id for fire in fires}
    keys = {fire.idempotency_key for fire in fires}
    fired = set(
        Event.objects.filter(team_id__in=team_ids, idempotency_key__in=keys).values_list("team_id", "idempotency_key")
    )
    now = timezone.now()
    events = []
    for fire in fires:
        key = (fire.contact.team_id, fire.idempotency_key)
        if key in fired:
            continue
        fired.add(key)
        events.append(
            Event(
                team_id=fire.contact.team_id,
                contact=fire.contact,
                name=fire.name,
                properties=fire.properties,
                source=fire.source,
                idempotency_key=fire.idempotency_key,
                occurred_at=fire.occurred_at or now,
                livemode=fire.contact.livemode,
            )
        )
    # A key another writer fired meanwhile raises IntegrityError: the caller's savepoint undoes the batch.
    Event.objects.bulk_create(events)
    names = {event.name for event in events}
    loops: dict[tuple[int, str], list[Loop]] = defaultdict(list)
    for loop in Loop.objects.filter(
        team_id__in=team_ids, status=Loop.Status.ACTIVE, trigger=Loop.Trigger.EVENT, trigger_event_name__in=names
    ):
        loops[(loop.team_id, loop.trigger_event_name)].append(loop)
    runs = [
        new_run(loop, event.contact_id, event=event, now=now)
        for event in events
        for loop in loops[(event.team_id, event.name)]
    ]
    LoopRun.objects.bulk_create(runs, ignore_conflicts=True)  # once per contact or key: entered already
    woken = _runs_wake_waiting({(event.contact_id, event.name) for event in events}, now)
    if runs or woken:
        work.wake_on_commit(work.DRAIN_RUNS)
    return events


def _runs_wake_waiting(pairs: set[tuple[int, str]], now: datetime) -> int:
    """`runs_wake_waiting` for many (contact id, event name) pairs."""
    if not pairs:
        return 0
    candidates = LoopRun.objects.filter(
        status=LoopRun.Status.WAITING,
        contact_id__in={contact_id for contact_id, _ in pairs},
        waiting_for__in={name for _, name in pairs},
    ).values_list("id", "contact_id", "waiting_for")
    due = [run_id for run_id, contact_id, name in candidates if (contact_id, name) in pairs]
    if not due:
        return 0
    return LoopRun.objects.filter(id__in=due, status=LoopRun.Status.WAITING).update(next_due_at=now)
