"""Moving a run through its loop's steps. A worker claims a due run, executes steps until one waits
or the loop ends, and records each step in the run's history."""

import logging
from datetime import timedelta
from typing import Any

from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from contacts.models import Contact

from .models import Event, Loop, LoopRun, LoopStep
from .sending import email_queue

logger = logging.getLogger(__name__)

# A claimed run is the worker's for this long; if the worker dies, the beat task takes it again.
RUN_LEASE = timedelta(minutes=5)
PAUSED_RECHECK = timedelta(minutes=15)
MAX_STEPS_PER_ADVANCE = 100  # a guard against a loop of instant steps that never ends


def run_claim(*, run_id: int) -> bool:
    now = timezone.now()
    claimed = LoopRun.objects.filter(
        id=run_id, status__in=[LoopRun.Status.ACTIVE, LoopRun.Status.WAITING], next_due_at__lte=now
    ).update(next_due_at=now + RUN_LEASE)
    return claimed == 1


def run_advance(*, run_id: int) -> LoopRun | None:
    """Claim the run and execute its due steps. None when it was not due or another worker has it."""
    if not run_claim(run_id=run_id):
        return None
    try:
        with transaction.atomic():
            run = LoopRun.objects.select_related("loop", "contact", "event").get(id=run_id)
            if run.loop.status != Loop.Status.ACTIVE:
                # A paused loop holds its runs where they are; they go on when it is activated again.
                run.next_due_at = timezone.now() + PAUSED_RECHECK
                run.save(update_fields=["next_due_at", "updated_at"])
                return run
            _execute(run)
            run.save()
    except (OperationalError, InterfaceError):
        raise  # temporary: the claim's lease runs out and the beat task takes the run again
    except Exception as exc:
        logger.exception("Run %s failed", run_id)
        LoopRun.objects.filter(id=run_id).update(
            status=LoopRun.Status.FAILED, last_error=f"{type(exc).__name__}: {exc}"[:2000], next_due_at=None
        )
        return LoopRun.objects.get(id=run_id)
    return run


def _note(run: LoopRun, step: LoopStep | None, what: str, **extra: Any) -> None:
    run.history.append(
        {
            "at": timezone.now().isoformat(),
            "step": step.position if step else None,
            "kind": step.kind if step else None,
            "what": what,
            **extra,
        }
    )


def _finish(run: LoopRun, status: str, step: LoopStep | None, what: str) -> None:
    run.status = status
    run.next_due_at = None
    run.waiting_for = ""
    run.wait_until = None
    _note(run, step, what)


def _wait(run: LoopRun, step: LoopStep, until, what: str, waiting_for: str = "") -> None:
    run.status = LoopRun.Status.WAITING
    run.position = step.position
    run.wait_until = until
    run.waiting_for = waiting_for
    run.next_due_at = until
    _note(run, step, what, until=until.isoformat())


def _resume(run: LoopRun) -> None:
    run.status = LoopRun.Status.ACTIVE
    run.wait_until = None
    run.waiting_for = ""


def _execute(run: LoopRun) -> None:
    now = timezone.now()
    steps = list(run.loop.steps.filter(position__gte=run.position).order_by("position", "id")[:MAX_STEPS_PER_ADVANCE])
    for step in steps:
        run.position = step.position
        if step.kind == LoopStep.Kind.EMAIL:
            message = email_queue(run=run, step=step)
            _note(run, step, "email " + message.status, email_id=message.id)
        elif step.kind == LoopStep.Kind.TIMER:
            if run.wait_until is None:
                return _wait(run, step, now + step.delay, "timer started")
            if now < run.wait_until:
                run.next_due_at = run.wait_until
                return None
            _resume(run)
            _note(run, step, "timer done")
        elif step.kind == LoopStep.Kind.WAIT_EVENT:
            arrived = _event_arrived(run, step.wait_event_name)
            if run.wait_until is None and not arrived:
                return _wait(run, step, now + step.delay, "waiting for event", waiting_for=step.wait_event_name)
            if not arrived and now < run.wait_until:
                run.next_due_at = run.wait_until
                return None
            then = step.on_event if arrived else step.on_timeout
            _resume(run)
            what = f"{step.wait_event_name} {'arrived' if arrived else 'did not arrive in time'}"
            if then == LoopStep.Then.STOP:
                return _finish(run, LoopRun.Status.STOPPED, step, what + "; stopped")
            _note(run, step, what + "; continued")
        elif step.kind == LoopStep.Kind.FILTER:
            if not contact_matches(run.contact, step.filter_field, step.filter_operator, step.filter_value):
                return _finish(run, LoopRun.Status.FILTERED_OUT, step, "filtered out")
            _note(run, step, "matched the filter")
        run.position = step.position + 1
    if len(steps) == MAX_STEPS_PER_ADVANCE:
        run.next_due_at = timezone.now()  # more to do: the beat task continues it
        return None
    _finish(run, LoopRun.Status.COMPLETED, None, "completed")
    return None


def _event_arrived(run: LoopRun, name: str) -> bool:
    """Has the contact received this event since the run started? (Events that come while an earlier
    timer runs count: "no payment since the failure" is what a dunning loop asks.)"""
    return (
        Event.objects.filter(contact_id=run.contact_id, name=name, created_at__gte=run.created_at)
        .exclude(id=run.event_id)
        .exists()
    )


CONTACT_FIELDS = {
    "email",
    "first_name",
    "last_name",
    "source",
    "subscribed",
    "user_group",
    "user_id",
    "stripe_customer_id",
}


def _field_value(contact: Contact, field: str) -> Any:
    field = field.strip()
    if field.startswith("properties."):
        return (contact.properties or {}).get(field.removeprefix("properties."))
    if field in CONTACT_FIELDS:
        return getattr(contact, field)
    return (contact.properties or {}).get(field)


def contact_matches(contact: Contact, field: str, operator: str, value: str) -> bool:
    actual = _field_value(contact, field)
    is_set = actual not in (None, "", [], {})
    if operator == LoopStep.Operator.IS_SET:
        return is_set
    if operator == LoopStep.Operator.IS_NOT_SET:
        return not is_set
    text = str(actual).lower() if not isinstance(actual, bool) else str(actual).lower()
    wanted = value.strip().lower()
    if operator == LoopStep.Operator.EQUALS:
        return is_set and text == wanted
    if operator == LoopStep.Operator.NOT_EQUALS:
        return not (is_set and text == wanted)
    if operator == LoopStep.Operator.CONTAINS:
        return is_set and wanted in text
    raise ValueError(f"unknown filter condition {operator!r}")


def runs_due(*, limit: int = 500) -> list[int]:
    return list(
        LoopRun.objects.filter(
            status__in=[LoopRun.Status.ACTIVE, LoopRun.Status.WAITING], next_due_at__lte=timezone.now()
        )
        .order_by("next_due_at")
        .values_list("id", flat=True)[:limit]
    )


def runs_advance_due(*, limit: int = 500) -> int:
    """The beat task: advance every due run (timers that ran out, waits that timed out, lost wake-ups)."""
    advanced = 0
    for run_id in runs_due(limit=limit):
        try:
            if run_advance(run_id=run_id) is not None:
                advanced += 1
        except Exception:
            logger.exception("Run %s could not advance; it is retried when its lease runs out", run_id)
    return advanced
