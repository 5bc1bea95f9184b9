"""Moving a run through its loop's steps. A worker claims a due run, executes steps until one waits
or the loop ends, and records each step in the run's history."""

import logging
from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from contacts.models import Contact
from loopsync.drain import drain

from .models import Event, Loop, LoopRun, LoopStep
from .sending import email_queue, emails_wake

logger = logging.getLogger(__name__)

# A claimed run is the worker's for this long; if the worker dies, the beat task takes it again.
RUN_LEASE = timedelta(minutes=5)
PAUSED_RECHECK = timedelta(minutes=15)
TEMPORARY_RETRY = timedelta(seconds=30)
MAX_STEPS_PER_ADVANCE = 100  # a guard against a loop of instant steps that never ends


BATCH_SIZE = 50
DRAIN_BUDGET_SECONDS = 20


def run_claim(*, run_id: int) -> bool:
    now = timezone.now()
    claimed = LoopRun.objects.filter(
        id=run_id, status__in=[LoopRun.Status.ACTIVE, LoopRun.Status.WAITING], next_due_at__lte=now
    ).update(next_due_at=now + RUN_LEASE)
    return claimed == 1


def runs_claim(*, limit: int = BATCH_SIZE) -> list[int]:
    """Take up to `limit` due runs in one statement, skipping rows other workers are taking."""
    now = timezone.now()
    table = LoopRun._meta.db_table
    lock = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    sql = (
        f"UPDATE {table} SET next_due_at = %s WHERE id IN (SELECT id FROM {table} "  # noqa: S608 - no input
        f"WHERE status IN (%s, %s) AND next_due_at <= %s ORDER BY next_due_at LIMIT %s{lock}) RETURNING id"
    )
    params = [now + RUN_LEASE, LoopRun.Status.ACTIVE, LoopRun.Status.WAITING, now, limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return sorted(row[0] for row in cursor.fetchall())


def run_advance(*, run_id: int) -> LoopRun | None:
    """Claim the run and execute its due steps. None when it was not due or another worker has it."""
    if not run_claim(run_id=run_id):
        return None
    return _advance_batch([run_id])[0]


def _advance_batch(run_ids: list[int]) -> list[LoopRun]:
    """Load the claimed runs and their loops' steps in two queries, then advance each run in its own
    savepoint of one transaction (one commit per batch; a failing run does not undo the others)."""
    runs = list(LoopRun.objects.select_related("loop", "contact", "event").filter(id__in=run_ids).order_by("id"))
    steps: dict[int, list[LoopStep]] = defaultdict(list)
    for step in LoopStep.objects.filter(loop_id__in={run.loop_id for run in runs}).order_by("position", "id"):
        steps[step.loop_id].append(step)
    with transaction.atomic():
        advanced = [_advance_loaded(run, steps[run.loop_id]) for run in runs]
        if any(step.kind == LoopStep.Kind.EMAIL for run in runs for step in steps[run.loop_id]):
            transaction.on_commit(emails_wake)  # once for the batch: the sender drains what it queued
    _recheck_waits(advanced)
    return advanced


def _recheck_waits(runs: list[LoopRun]) -> None:
    """An event committed while these runs were being advanced was invisible to them, and its wake-up
    saw them not yet waiting: look again now that they are, so it is not missed until the timeout."""
    from .services import runs_wake

    woken = [
        run.id
        for run in runs
        if run.status == LoopRun.Status.WAITING and run.waiting_for and _event_arrived(run, run.waiting_for)
    ]
    if woken:
        LoopRun.objects.filter(id__in=woken, status=LoopRun.Status.WAITING).update(next_due_at=timezone.now())
        transaction.on_commit(runs_wake)


def _advance_loaded(run: LoopRun, steps: list[LoopStep]) -> LoopRun:
    run_id = run.id
    try:
        with transaction.atomic():
            if run.loop.status != Loop.Status.ACTIVE:
                # A paused loop holds its runs where they are; they go on when it is activated again.
                run.next_due_at = timezone.now() + PAUSED_RECHECK
                run.save(update_fields=["next_due_at", "updated_at"])
                return run
            _execute(run, [step for step in steps if step.position >= run.position][:MAX_STEPS_PER_ADVANCE])
            run.save()
    except (OperationalError, InterfaceError):
        raise  # temporary: the claim's lease runs out and the run is taken again
    except Exception as exc:
        logger.exception("Run %s failed", run_id)
        LoopRun.objects.filter(id=run_id).update(
            status=LoopRun.Status.FAILED, last_error=f"{type(exc).__name__}: {exc}"[:2000], next_due_at=None
        )
        return LoopRun.objects.get(id=run_id)
    return run


def runs_drain(*, batch_size: int = BATCH_SIZE, budget_seconds: float = DRAIN_BUDGET_SECONDS) -> int:
    """Advance due runs batch by batch, each batch in one transaction with a savepoint per run."""
    from .services import runs_wake

    def process(run_ids: list[int]) -> bool:
        try:
            _advance_batch(run_ids)
        except (OperationalError, InterfaceError):
            active = [LoopRun.Status.ACTIVE, LoopRun.Status.WAITING]
            LoopRun.objects.filter(id__in=run_ids, status__in=active).update(
                next_due_at=timezone.now() + TEMPORARY_RETRY
            )
            raise
        return True

    return drain(
        claim=lambda limit: runs_claim(limit=limit),
        process=process,
        wake=runs_wake,
        batch_size=batch_size,
        budget_seconds=budget_seconds,
    )


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


def _execute(run: LoopRun, steps: list[LoopStep]) -> None:
    """Execute `steps` (the loop's, from the run's position on) until one waits or the loop ends."""
    now = timezone.now()
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
    """Has the contact had this event since the one that started the run? Compared by when they
    happened at their source, not when they reached us: Stripe delivers out of order, and a payment
    made after the failure must stop the reminder even when it was processed first. (Events during an
    earlier timer count: "no payment since the failure" is what a dunning loop asks.)"""
    since = run.event.occurred_at if run.event_id else run.created_at
    arrived = Event.objects.filter(contact_id=run.contact_id, name=name, occurred_at__gte=since)
    return arrived.exclude(id=run.event_id).exists()


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


def runs_advance_due() -> int:
    """The beat task: advance every due run (timers that ran out, waits that timed out, lost wake-ups)."""
    return runs_drain()
