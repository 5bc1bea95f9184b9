"""Loop use cases: fire events, set up loops, and start runs. Every source fires through `event_fire`."""

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import Team
from contacts.models import Contact
from contacts.services import contact_upsert
from loopsync import work

from ..models import EmailMessage, Event, Loop, LoopRun, LoopStep, LoopTemplate, TransactionalEmail
from .enrolling import new_run
from .graph import branching, step_insert, tree_load
from .naming import loop_name_free

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
    """Enrol the contact, as often as the loop's frequency lets it (enrolling.entry_key), by constraint: None
    when it has entered already."""
    try:
        with transaction.atomic():
            run = new_run(loop, contact.pk, event=event, now=timezone.now())
            run.contact = contact
            run.save(force_insert=True)
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


ACTING = {LoopStep.Kind.EMAIL, LoopStep.Kind.UPDATE_CONTACT}  # a loop without one of these does nothing


def loop_activation_errors(loop: Loop) -> list[str]:
    errors = []
    if loop.trigger == Loop.Trigger.EVENT and not loop.trigger_event_name.strip():
        errors.append("Choose the event that triggers this loop.")
    if loop.trigger == Loop.Trigger.LIST_ADDED and loop.trigger_list_id is None:
        errors.append("Choose the mailing list that starts this loop.")
    if loop.frequency == Loop.Frequency.PER_KEY and not loop.frequency_key.strip():
        errors.append("Name the event property whose value is the key (e.g. invoice_id).")
    tree = tree_load(loop)
    if not any(step.kind in ACTING for step in tree.steps.values()):
        errors.append("Add at least one step that sends an email or updates the contact.")
    if len(tree.roots) > 1:
        errors.append("The steps do not form one tree: export the loop and import it again.")
    for number, (step, _) in enumerate(tree.walk(), start=1):
        try:
            step.clean()
        except ValidationError as exc:
            errors.extend(f"Step {number} ({step.get_kind_display()}): {m}" for m in exc.messages)
    return errors


def loop_activate(*, loop: Loop) -> Loop:
    errors = loop_activation_errors(loop)
    if errors:
        raise ValidationError(f"“{loop.name}” cannot be activated: " + " ".join(errors))
    return _loop_status(loop, Loop.Status.ACTIVE)


def loop_pause(*, loop: Loop) -> Loop:
    return _loop_status(loop, Loop.Status.PAUSED)


def _loop_status(loop: Loop, status: str) -> Loop:
    """Activate or pause, unless the loop is archived (even since the page was loaded): restore it first."""
    changed = (
        Loop.objects.filter(pk=loop.pk)
        .exclude(status=Loop.Status.ARCHIVED)
        .update(status=status, updated_at=timezone.now())
    )
    if not changed:
        raise ValidationError(ARCHIVED_MESSAGE.format(name=loop.name))
    loop.status = status
    return loop


ARCHIVED_MESSAGE = "“{name}” is archived: restore it as a draft to change it."


def loop_archive(*, loop: Loop) -> Loop:
    """Archived: it starts nobody, its runs under way stop (with a note), and it leaves the loops list (shown
    under "Archived"). It can be duplicated, or restored as a draft."""
    now = timezone.now()
    with transaction.atomic():
        Loop.objects.filter(pk=loop.pk).update(status=Loop.Status.ARCHIVED, updated_at=now)
        in_progress = LoopRun.objects.filter(loop=loop, status__in=[LoopRun.Status.ACTIVE, LoopRun.Status.WAITING])
        for run in in_progress.select_for_update():
            run.history.append({"at": now.isoformat(), "step": run.step_id, "what": "stopped: the loop was archived"})
            run.status, run.next_due_at, run.waiting_for, run.wait_until = LoopRun.Status.STOPPED, None, "", None
            run.save(update_fields=["history", "status", "next_due_at", "waiting_for", "wait_until", "updated_at"])
    loop.status = Loop.Status.ARCHIVED
    return loop


def loop_restore(*, loop: Loop) -> Loop:
    Loop.objects.filter(pk=loop.pk, status=Loop.Status.ARCHIVED).update(
        status=Loop.Status.DRAFT, updated_at=timezone.now()
    )
    loop.refresh_from_db(fields=["status"])
    return loop


def loop_delete(*, loop: Loop) -> dict[str, int]:
    """Delete the loop with its steps and runs (runs under way end, nothing more is sent: its queued emails are
    skipped). The emails it sent stay on their contacts' pages and in the log, no longer linked to a run. Returns
    what went."""
    with transaction.atomic():
        Loop.objects.select_for_update().filter(pk=loop.pk).first()  # after any runs batch holding it (runs.py)
        counts = {
            "steps": loop.steps.count(),
            "runs": loop.runs.count(),
            "in_progress": loop.runs.filter(status__in=[LoopRun.Status.ACTIVE, LoopRun.Status.WAITING]).count(),
        }
        # A message without a run is a transactional one, sent even to an unsubscribed contact: what is still
        # queued must not go out as one.
        EmailMessage.objects.filter(run__loop=loop, status=EmailMessage.Status.QUEUED).update(
            status=EmailMessage.Status.SKIPPED, error="The loop was deleted before sending.", next_attempt_at=None
        )
        EmailMessage.objects.filter(run__loop=loop).update(run=None)
        loop.delete()
    return counts


STEP_FIELDS = [f.name for f in LoopStep._meta.fields if f.name not in {"id", "team", "loop", "parent", "port"}]


def loop_create_blank(*, team: Team) -> Loop:
    """A new draft loop with no steps, triggered by an event the user names: "Untitled loop", or the first free
    "Untitled loop (2)"…"""
    for _ in range(3):  # another member's loop took the name meanwhile: the next free one
        loop = Loop(team=team, name=loop_name_free(team=team, name="Untitled loop"), trigger=Loop.Trigger.EVENT)
        try:
            with transaction.atomic():
                loop.save()
            return loop
        except IntegrityError:
            continue
    raise ValidationError("Another loop took the name meanwhile: try again.")


def loop_create_from_template(*, team: Team, template: LoopTemplate, name: str = "") -> Loop:
    """A new draft loop for the team, from the template's JSON (loops.services.specs)."""
    from .specs import loop_import

    return loop_import(team=team, spec=template.spec, name=name, template_slug=template.slug)


# --- editing a loop's steps ----------------------------------------------------------------------


def step_add(*, loop: Loop, step: LoopStep, after: LoopStep | None = None, port: int = 0) -> LoopStep:
    """Add a validated, unsaved step on `after`'s `port` (default: at the end of the loop's main line), also
    while the loop is active: see loops.services.graph."""
    if after is None:
        tree = tree_load(loop)
        chain = tree.chain_from(tree.root)
        after = chain[-1] if chain else None
        if after is not None and branching(after):
            raise ValidationError("Add the step on one of the branch's paths.")
    return step_insert(loop=loop, step=step, parent=after, port=port)


def step_save(*, step: LoopStep) -> LoopStep:
    """Save an existing step's content (allowed on an active loop: runs read a step when they reach it).
    Its place is not written: a move saved meanwhile stands."""
    step.full_clean(exclude=["parent"])
    step.save(update_fields=STEP_FIELDS)
    Loop.objects.filter(pk=step.loop_id).update(updated_at=timezone.now())
    return step


def loop_save(*, loop: Loop) -> Loop:
    """Save a loop's name, trigger and frequency (validated by the editor's form). On an active loop the new
    trigger applies from now on; runs already started go on."""
    loop.save(update_fields=LOOP_FIELDS + ["updated_at"])
    return loop


LOOP_FIELDS = [
    "name", "trigger", "trigger_event_name", "trigger_field", "trigger_from", "trigger_from_set", "trigger_to",
    "trigger_to_set", "trigger_list", "frequency", "frequency_key",
]  # fmt: skip


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
