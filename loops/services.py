"""Loop use cases: fire events, set up loops, and start runs. Every source fires through `event_fire`."""

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Team
from contacts.models import Contact
from loopsync.wakeup import wake

from .models import Event, Loop, LoopRun, LoopStep, LoopTemplate

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FireResult:
    event: Event
    created: bool  # False: this idempotency key had fired already, nothing happened again


def event_fire(
    *,
    team: Team,
    contact: Contact,
    name: str,
    properties: dict[str, Any] | None = None,
    source: str = "",
    idempotency_key: str = "",
    occurred_at: datetime | None = None,
) -> FireResult:
    """Record that `name` happened to `contact` (once per idempotency key within the team), enrol the
    contact in the team's active loops triggered by it, and wake runs waiting for it."""
    name = name.strip()
    if not name:
        raise ValueError("event_fire needs an event name")
    if contact.team_id != team.id:
        raise ValueError("the contact belongs to another team")
    # A repeated key fails on the unique constraint (no look-up first: repeats are rare).
    try:
        with transaction.atomic():
            event = Event.objects.create(
                team=team,
                contact=contact,
                name=name,
                properties=properties or {},
                source=source,
                idempotency_key=idempotency_key,
                occurred_at=occurred_at or timezone.now(),
            )
            loops = Loop.objects.filter(
                team=team, status=Loop.Status.ACTIVE, trigger=Loop.Trigger.EVENT, trigger_event_name=name
            )
            for loop in loops:
                run_start(loop=loop, contact=contact, event=event)
            runs_wake_waiting(contact=contact, event_name=name)
    except IntegrityError:
        if not idempotency_key:
            raise
        return FireResult(event=Event.objects.get(team=team, idempotency_key=idempotency_key), created=False)
    return FireResult(event=event, created=True)


def contact_added(*, contact: Contact) -> list[LoopRun]:
    """A new contact, from any source: enrol it in the team's active "Contact added" loops, once."""
    loops = Loop.objects.filter(team_id=contact.team_id, status=Loop.Status.ACTIVE, trigger=Loop.Trigger.CONTACT_ADDED)
    runs = [run_start(loop=loop, contact=contact, event=None) for loop in loops]
    return [run for run in runs if run is not None]


def run_start(*, loop: Loop, contact: Contact, event: Event | None) -> LoopRun | None:
    """Enrol once per (loop, event) — or once per contact for "Contact added" — by constraint."""
    try:
        with transaction.atomic():
            run = LoopRun.objects.create(
                team_id=loop.team_id,
                loop=loop,
                contact=contact,
                event=event,
                next_due_at=timezone.now(),
                history=[{"at": timezone.now().isoformat(), "step": None, "what": "enrolled"}],
            )
    except IntegrityError:
        return None
    transaction.on_commit(runs_wake)
    return run


def runs_wake() -> bool:
    """Wake a worker to advance due runs (one pending wake-up however many runs start)."""
    from .tasks import drain_runs

    return wake(drain_runs, "runs")


def runs_wake_waiting(*, contact: Contact, event_name: str) -> list[int]:
    """Runs of this contact waiting for this event are due now; the worker decides which path."""
    ids = list(
        LoopRun.objects.filter(contact=contact, status=LoopRun.Status.WAITING, waiting_for=event_name).values_list(
            "id", flat=True
        )
    )
    if ids:
        LoopRun.objects.filter(id__in=ids, status=LoopRun.Status.WAITING).update(next_due_at=timezone.now())
        transaction.on_commit(runs_wake)
    return ids


# --- setting loops up ----------------------------------------------------------------------------


def loop_activation_errors(loop: Loop) -> list[str]:
    errors = []
    if loop.trigger == Loop.Trigger.EVENT and not loop.trigger_event_name.strip():
        errors.append("Choose the event that triggers this loop.")
    steps = list(loop.steps.all())
    if not any(step.kind == LoopStep.Kind.EMAIL for step in steps):
        errors.append("Add at least one email step.")
    for step in steps:
        try:
            step.clean()
        except ValidationError as exc:
            errors.extend(f"Step {step.position} ({step.get_kind_display()}): {m}" for m in exc.messages)
    return errors


def loop_activate(*, loop: Loop) -> Loop:
    errors = loop_activation_errors(loop)
    if errors:
        raise ValidationError(f"“{loop.name}” cannot be activated: " + " ".join(errors))
    Loop.objects.filter(pk=loop.pk).update(status=Loop.Status.ACTIVE, updated_at=timezone.now())
    loop.status = Loop.Status.ACTIVE
    return loop


def loop_pause(*, loop: Loop) -> Loop:
    Loop.objects.filter(pk=loop.pk).update(status=Loop.Status.PAUSED, updated_at=timezone.now())
    loop.status = Loop.Status.PAUSED
    return loop


STEP_FIELDS = [f.name for f in LoopStep._meta.fields if f.name not in {"id", "team", "loop", "position"}]


@transaction.atomic
def loop_create_from_template(*, team: Team, template: LoopTemplate, name: str = "") -> Loop:
    """A new draft loop for the team, with the template's trigger and a copy of its steps."""
    loop = Loop.objects.create(
        team=team,
        name=name.strip() or template.name,
        trigger=template.trigger,
        trigger_event_name=template.trigger_event_name,
        template_slug=template.slug,
    )
    LoopStep.objects.bulk_create(
        LoopStep(team=team, loop=loop, position=index, **{k: v for k, v in spec.items() if k in STEP_FIELDS})
        for index, spec in enumerate(template.steps, start=1)
    )
    return loop
