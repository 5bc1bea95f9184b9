"""Loop use cases: fire events, set up loops, and start runs. Every source fires through `event_fire`."""

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import Team
from contacts.models import Contact
from contacts.services import contact_upsert
from loopsync import work

from ..models import Event, Loop, LoopRun, LoopStep, LoopTemplate, TransactionalEmail

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
                livemode=contact.livemode,
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


@transaction.atomic
def event_send(
    *,
    team: Team,
    name: str,
    properties: dict[str, Any] | None = None,
    email: str = "",
    user_id: str = "",
    contact_fields: dict[str, Any] | None = None,
    contact_properties: dict[str, Any] | None = None,
    mailing_lists: dict[str, bool] | None = None,
    source: str = "API",
) -> FireResult:
    """An event for the contact with this userId or email, created when missing and updated with the
    given fields, properties and lists, all or nothing (the API's `events/send`). Raises what
    `contact_upsert` raises."""
    contact, _ = contact_upsert(
        team=team,
        email=email,
        user_id=user_id,
        fields=contact_fields,
        properties=contact_properties,
        mailing_lists=mailing_lists,
    )
    return event_fire(team=team, contact=contact, name=name, properties=properties, source=source)


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
    work.wake_on_commit(work.DRAIN_RUNS)
    return run


def runs_wake_waiting(*, contact: Contact, event_name: str) -> list[int]:
    """Runs of this contact waiting for this event are due now; the worker decides which path."""
    ids = list(
        LoopRun.objects.filter(contact=contact, status=LoopRun.Status.WAITING, waiting_for=event_name).values_list(
            "id", flat=True
        )
    )
    if ids:
        LoopRun.objects.filter(id__in=ids, status=LoopRun.Status.WAITING).update(next_due_at=timezone.now())
        work.wake_on_commit(work.DRAIN_RUNS)
    return ids


# --- setting loops up ----------------------------------------------------------------------------

# What an event name may be: what a loop's trigger, a wait step and a Stripe type's setting match.
EVENT_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,120}")


def event_name_validate(name: str) -> str:
    """The name stripped, or ValidationError; blank passes (the caller decides if it is required)."""
    name = name.strip()
    if name and not EVENT_NAME.fullmatch(name):
        raise ValidationError(
            "An event name is up to 120 letters, digits, _, - or . with no spaces, e.g. failedPayment."
        )
    return name


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


# --- editing a loop's steps ----------------------------------------------------------------------


class LoopLocked(ValidationError):
    """Steps are added, removed and reordered only while the loop is not active."""


def _lock_for_structure(loop: Loop) -> Loop:
    """The loop's row, locked: one structural edit at a time, and never on an active loop, whose runs
    stand at a step by its position."""
    locked = Loop.objects.select_for_update().get(pk=loop.pk)
    if locked.status == Loop.Status.ACTIVE:
        raise LoopLocked("Pause the loop to add, remove or reorder steps: its runs are at a step by its number.")
    return locked


def _renumber(loop: Loop, ordered: list[LoopStep]) -> None:
    for index, step in enumerate(ordered, start=1):
        if step.position != index:
            step.position = index
            LoopStep.objects.filter(pk=step.pk).update(position=index)
    Loop.objects.filter(pk=loop.pk).update(updated_at=timezone.now())


@transaction.atomic
def step_add(*, loop: Loop, step: LoopStep) -> LoopStep:
    """Append a validated, unsaved step to a loop that is not active."""
    loop = _lock_for_structure(loop)
    last = loop.steps.order_by("-position").values_list("position", flat=True).first() or 0
    step.team_id, step.loop, step.position = loop.team_id, loop, last + 1
    step.full_clean()
    step.save()
    Loop.objects.filter(pk=loop.pk).update(updated_at=timezone.now())
    return step


def step_save(*, step: LoopStep) -> LoopStep:
    """Save an existing step's content (allowed on an active loop: runs read a step when they reach it).
    Its place is not written: a reorder saved meanwhile stands."""
    step.full_clean()
    step.save(update_fields=STEP_FIELDS)
    Loop.objects.filter(pk=step.loop_id).update(updated_at=timezone.now())
    return step


def _runs_in_progress(loop: Loop):
    return LoopRun.objects.filter(loop=loop, status__in=[LoopRun.Status.ACTIVE, LoopRun.Status.WAITING])


@transaction.atomic
def step_remove(*, step: LoopStep) -> None:
    """Delete a step and close the gap. Runs in progress keep their place: a run waiting in the removed
    step goes on with the step after it, runs further on move up with their steps. Emails the step sent
    stay on their contacts' pages."""
    loop = _lock_for_structure(step.loop)
    removed = step.position
    LoopStep.objects.filter(pk=step.pk, loop=loop).delete()
    _renumber(loop, list(loop.steps.order_by("position", "id")))
    runs = _runs_in_progress(loop)
    runs.filter(position=removed).update(
        status=LoopRun.Status.ACTIVE, wait_until=None, waiting_for="", next_due_at=timezone.now()
    )
    runs.filter(position__gt=removed).update(position=F("position") - 1)


class StepsInUse(ValidationError):
    """Runs stand between the steps a move would swap."""


@transaction.atomic
def step_move(*, step: LoopStep, offset: int) -> None:
    """Move a step up (-1) or down (+1) by one place; at either end nothing changes.

    A run stands at a step by its number. Swapping steps i and i+1 is safe for runs before i (they do both,
    in the new order) and after i+1 (they did both); a run at i+1 has done one of the two and not the
    other, and a run waiting in step i is half-way through it: while there are such runs, the move is
    refused rather than skipping or repeating a step for them."""
    loop = _lock_for_structure(step.loop)
    ordered = list(loop.steps.order_by("position", "id"))
    index = next((i for i, s in enumerate(ordered) if s.pk == step.pk), None)
    if index is None:
        return
    target = index + (1 if offset > 0 else -1)
    if not 0 <= target < len(ordered):
        return
    first = min(index, target) + 1  # the positions swapped: first and first + 1
    between = (
        _runs_in_progress(loop).filter(Q(position=first + 1) | Q(position=first, status=LoopRun.Status.WAITING)).count()
    )
    if between:
        raise StepsInUse(
            f"{between} contact{'s are' if between != 1 else ' is'} part-way through these two steps: moving them "
            "would skip or repeat a step for them. Wait until they have passed, or remove the step instead."
        )
    ordered[index], ordered[target] = ordered[target], ordered[index]
    _renumber(loop, ordered)


def loop_save(*, loop: Loop) -> Loop:
    """Save a loop's name and trigger (validated by the editor's form). On an active loop the new
    trigger applies to events from now on; runs already started go on."""
    loop.save(update_fields=["name", "trigger", "trigger_event_name", "updated_at"])
    return loop


# --- transactional emails ------------------------------------------------------------------------


def _public_id(name: str) -> str:
    # Fits TransactionalEmail.public_id (32): 23 characters of the name, "-", 8 random hex digits.
    return f"{slugify(name)[:23].strip('-') or 'email'}-{secrets.token_hex(4)}"


def transactional_save(*, transactional: TransactionalEmail) -> TransactionalEmail:
    """Create (with a new `transactionalId`) or update a transactional email, validated."""
    if not transactional.public_id:
        transactional.public_id = _public_id(transactional.name)
    transactional.full_clean()
    transactional.save()
    return transactional


def transactional_delete(*, transactional: TransactionalEmail) -> None:
    transactional.delete()  # its sent messages stay, on their contacts' pages
