"""Moving a run through its loop's steps. A worker claims a due run, executes steps until one waits
or the loop ends, and records each step in the run's history.

Rendering a step's email is the costly part, and a team decides how costly. So one tenant cannot hold
others back: a run renders for at most RUN_TURN_SECONDS a turn, then is continued later (behind the
runs already due); a batch takes no new run after a quarter of CELERY_TASK_SOFT_TIME_LIMIT, commits what
it did and puts the rest back, due as they were; and runs are taken in the order they fell due. A batch
therefore always commits well inside the task's time limit, and every run makes progress.
"""

import hashlib
import logging
import time
from datetime import timedelta
from functools import partial
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from contacts.conditions import Subject, conditions_fields, conditions_match
from contacts.models import ListMembership
from loopsync import work

from ..models import Event, Loop, LoopRun, LoopStep, step_key
from ..rendering import RenderError, RenderTimeout
from .enrolling import changes_made_by
from .graph import Tree, trees_load
from .queueing import email_queue
from .updating import contact_update_apply

logger = logging.getLogger(__name__)

# A claimed run is the worker's for this long; if the worker dies, the beat task takes it again.
RUN_LEASE = timedelta(minutes=5)
PAUSED_RECHECK = timedelta(minutes=15)
TEMPORARY_RETRY = timedelta(seconds=30)
MAX_STEPS_PER_ADVANCE = 100  # a guard against a loop of instant steps that never ends
RUN_TURN_SECONDS = 5.0  # executing one run's steps; past it the run is continued later, like past MAX_STEPS
# Running out of render time at send time may be the machine's doing, not the template's: tried again
# after 1, 2 and 4 minutes, then the run fails with the message.
RENDER_RETRIES = 3
RENDER_RETRY = timedelta(minutes=1)
RENDER_TIMED_OUT = "rendering took too long; trying again later"


BATCH_SIZE = 50
DRAIN_BUDGET_SECONDS = 20


def batch_budget_seconds() -> float:
    """After this long a batch takes no new run: a quarter of the task's soft time limit, so that with the
    drain's own budget, the run in progress and its render, a batch commits well inside the limit."""
    return settings.CELERY_TASK_SOFT_TIME_LIMIT / 4


def _turn_seconds() -> float:
    return min(RUN_TURN_SECONDS, settings.CELERY_TASK_SOFT_TIME_LIMIT / 24)


def _drain_seconds(budget_seconds: float) -> float:
    return min(budget_seconds, settings.CELERY_TASK_SOFT_TIME_LIMIT / 6)


def runs_claim(*, limit: int = BATCH_SIZE) -> list[int]:
    """Take up to `limit` due runs, skipping rows other workers are taking. In the order they fell due,
    which is the order they are advanced in: a run put back, or continued later, waits its turn."""
    now = timezone.now()
    due = LoopRun.objects.filter(status__in=[LoopRun.Status.ACTIVE, LoopRun.Status.WAITING], next_due_at__lte=now)
    claimed = work.claim(due, order_by=["next_due_at", "id"], limit=limit, values={"next_due_at": now + RUN_LEASE})
    return [run.id for run in claimed]


def _advance_batch(run_ids: list[int], *, budget_seconds: float | None = None) -> list[LoopRun]:
    """Hold the runs' loops (`_loops_hold`), load the claimed runs still in progress and their loops' steps, then
    advance each run, in the order given, in its own savepoint of one transaction (one commit per batch; a failing
    run does not undo the others). Past `budget_seconds` (batch_budget_seconds()) no new run is started: those
    left are put back, due from the batch's start, ahead of any run continued meanwhile, and the batch commits."""
    started, now = time.monotonic(), timezone.now()
    budget = batch_budget_seconds() if budget_seconds is None else budget_seconds
    advanced: list[LoopRun] = []
    with transaction.atomic():
        _loops_hold(run_ids)
        # Read after the hold: what an edit, an archive or a removal committed before it is seen here.
        in_progress = LoopRun.objects.filter(status__in=[LoopRun.Status.ACTIVE, LoopRun.Status.WAITING])
        loaded = in_progress.select_related("loop", "contact", "event", "team").in_bulk(run_ids)
        runs = [loaded[run_id] for run_id in run_ids if run_id in loaded]
        trees = trees_load(run.loop_id for run in runs)
        for index, run in enumerate(runs):
            if advanced and time.monotonic() - started > budget:
                left = [later.id for later in runs[index:]]
                active = [LoopRun.Status.ACTIVE, LoopRun.Status.WAITING]
                LoopRun.objects.filter(id__in=left, status__in=active).update(next_due_at=now)
                transaction.on_commit(_wake_runs)
                break
            advanced.append(_advance_loaded(run, trees[run.loop_id]))
        emails = (step.kind == LoopStep.Kind.EMAIL for run in advanced for step in trees[run.loop_id].steps.values())
        if any(emails):
            work.wake_on_commit(work.DRAIN_EMAILS)  # once for the batch: the sender drains what it queued
    _recheck_waits(advanced)
    return advanced


def _loops_hold(run_ids: list[int]) -> None:
    """Hold the runs' loops (FOR SHARE) until the batch commits. Changing a loop's tree (graph._lock), archiving
    or deleting it takes the row FOR UPDATE, so it waits for the batch, and the batch, which reads the runs and
    trees after this, waits for it: a run is never advanced along a tree it no longer has, nor saved over what
    the change wrote to it (its `passed`, its status). Batches share the hold. (SQLite has one writer.)"""
    if connection.vendor != "postgresql" or not run_ids:
        return
    loops, runs = (connection.ops.quote_name(model._meta.db_table) for model in (Loop, LoopRun))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {loops} WHERE id IN (SELECT loop_id FROM {runs} WHERE id = ANY(%s))"  # noqa: S608 - model names
            " ORDER BY id FOR SHARE",
            [list(run_ids)],
        )


def _wake_runs() -> None:
    work.wake(work.DRAIN_RUNS)


def _recheck_waits(runs: list[LoopRun]) -> None:
    """An event committed while these runs were being advanced was invisible to them, and its wake-up
    saw them not yet waiting: look again now that they are, so it is not missed until the timeout."""
    woken = [
        run.id
        for run in runs
        if run.status == LoopRun.Status.WAITING and run.waiting_for and _event_arrived(run, run.waiting_for)
    ]
    if woken:
        LoopRun.objects.filter(id__in=woken, status=LoopRun.Status.WAITING).update(next_due_at=timezone.now())
        work.wake_on_commit(work.DRAIN_RUNS)


def _advance_loaded(run: LoopRun, tree: Tree) -> LoopRun:
    run_id = run.id
    try:
        with transaction.atomic():
            if run.loop.status != Loop.Status.ACTIVE:
                # A paused loop holds its runs where they are; they go on when it is activated again.
                run.next_due_at = timezone.now() + PAUSED_RECHECK
                run.save(update_fields=["next_due_at", "updated_at"])
                return run
            _execute(run, tree)
            run.save()
    except (OperationalError, InterfaceError, SoftTimeLimitExceeded):
        raise  # temporary, or the task's time limit: the drain releases the batch, else its lease runs out
    except RenderTimeout as exc:  # the savepoint undid this turn; the run is tried again, then fails
        return _render_retry(run_id, run.step_id, exc)
    except Exception as exc:
        if isinstance(exc, RenderError):  # the template (or this contact's values) went over a limit
            logger.warning("Run %s failed: %s", run_id, exc)
            error = str(exc)
        else:
            logger.exception("Run %s failed", run_id)
            error = f"{type(exc).__name__}: {exc}"
        LoopRun.objects.filter(id=run_id).update(
            status=LoopRun.Status.FAILED, last_error=error[:2000], next_due_at=None
        )
        return LoopRun.objects.get(id=run_id)
    return run


def _render_retry(run_id: int, step_id: int | None, exc: RenderTimeout) -> LoopRun:
    """The run's email ran out of render time: tried again after a backoff, RENDER_RETRIES times in a row
    at most (each try leaves a note in the history), then failed with the message."""
    run = LoopRun.objects.get(id=run_id)
    tries = 0
    for entry in reversed(run.history):
        if entry.get("what") != RENDER_TIMED_OUT:
            break
        tries += 1
    if tries >= RENDER_RETRIES:
        error = f"{exc} (tried {tries + 1} times)"
        logger.warning("Run %s failed: %s", run_id, error)
        LoopRun.objects.filter(id=run_id).update(status=LoopRun.Status.FAILED, last_error=error, next_due_at=None)
        return LoopRun.objects.get(id=run_id)
    logger.info("Run %s: %s; trying again later", run_id, exc)
    run.history.append(
        {"at": timezone.now().isoformat(), "step": step_id, "kind": LoopStep.Kind.EMAIL, "what": RENDER_TIMED_OUT,
         "error": str(exc)}
    )  # fmt: skip
    run.last_error = str(exc)
    run.next_due_at = timezone.now() + RENDER_RETRY * 2**tries
    run.save(update_fields=["history", "last_error", "next_due_at", "updated_at"])
    return run


def runs_release(*, run_ids: list[int], due_at) -> int:
    """Put claimed runs back, due at `due_at`, one row per statement: a release holds no lock while it waits
    for one, so it can never be one side of a deadlock (with the wake-ups of runs_wake_waiting, say) and
    strand the batch under its lease. Returns how many were put back; a run that is not found, or a database
    that is down, is left to its lease."""
    released = 0
    active = [LoopRun.Status.ACTIVE, LoopRun.Status.WAITING]
    for run_id in sorted(run_ids):
        try:
            released += LoopRun.objects.filter(id=run_id, status__in=active).update(next_due_at=due_at)
        except (OperationalError, InterfaceError) as exc:
            logger.warning("Runs not released (%s); their lease of %s ends the claim: %s", run_ids, RUN_LEASE, exc)
            break
    return released


def runs_drain(*, batch_size: int = BATCH_SIZE, budget_seconds: float = DRAIN_BUDGET_SECONDS) -> int:
    """Advance due runs batch by batch, each batch in one transaction with a savepoint per run."""

    def process(run_ids: list[int]) -> bool:
        try:
            _advance_batch(run_ids)
        except SoftTimeLimitExceeded:
            # The task's time limit (CELERY_TASK_SOFT_TIME_LIMIT) undid the batch's transaction: its runs
            # are due again now rather than when their lease runs out. Advancing a run twice is harmless
            # (a step's email is unique per run and step), so releasing a batch that did commit is too.
            runs_release(run_ids=run_ids, due_at=timezone.now())
            raise
        except (OperationalError, InterfaceError) as exc:
            if work.is_contention(exc):  # lost a race with another transaction: again at once
                runs_release(run_ids=run_ids, due_at=timezone.now())
                logger.info("A batch of %s runs lost a race (%s); it is taken again at once", len(run_ids), exc)
                return True
            runs_release(run_ids=run_ids, due_at=timezone.now() + TEMPORARY_RETRY)
            raise
        return True

    return work.drain(
        claim=lambda limit: runs_claim(limit=limit),
        process=process,
        wake=partial(work.wake, work.DRAIN_RUNS),
        batch_size=batch_size,
        budget_seconds=_drain_seconds(budget_seconds),
    )


def _note(run: LoopRun, step: LoopStep | None, what: str, **extra: Any) -> None:
    run.history.append(
        {
            "at": timezone.now().isoformat(),
            "step": step.id if step else None,
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
    _note(run, step, what)  # a run that ends at a step (filtered out, stopped) stays at it: it did not go on


def _pass(run: LoopRun, step: LoopStep) -> None:
    run.passed[step_key(step.id)] = timezone.now().isoformat()


def _wait(run: LoopRun, step: LoopStep, until, what: str, waiting_for: str = "") -> None:
    run.status = LoopRun.Status.WAITING
    run.wait_until = until
    run.waiting_for = waiting_for
    run.next_due_at = until
    _note(run, step, what, until=until.isoformat())


def _resume(run: LoopRun) -> None:
    run.status = LoopRun.Status.ACTIVE
    run.wait_until = None
    run.waiting_for = ""


def _current(run: LoopRun, tree: Tree) -> LoopStep | None:
    """The step the run is in the middle of (a timer or a wait it started, even if a reorder put other steps
    before it since), else the first on its way it has not passed (also for a run whose turn ran out at a step it
    had yet to start: a step put before that one since is ahead of it)."""
    step = tree.steps.get(run.step_id) if run.step_id and run.wait_until is not None else None
    if step is not None and step_key(step.id) not in run.passed:
        return step
    return tree.next_for(run.passed, run.choices)


def _execute(run: LoopRun, tree: Tree) -> None:
    """Execute the run's steps along its way until one waits or the way ends, or its turn is over
    (RUN_TURN_SECONDS, MAX_STEPS_PER_ADVANCE: the run is continued later)."""
    now = timezone.now()
    turn_ends = time.monotonic() + _turn_seconds()
    for count in range(MAX_STEPS_PER_ADVANCE + 1):
        step = _current(run, tree)
        if step is None:
            run.step = None
            return _finish(run, LoopRun.Status.COMPLETED, None, "completed")
        if count == MAX_STEPS_PER_ADVANCE or (count and time.monotonic() > turn_ends):
            run.step = step
            run.next_due_at = timezone.now()  # more to do: continued by the next drain, behind the runs due
            return None
        run.step = step
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
            if not arrived and run.wait_until is not None and now < run.wait_until:
                run.next_due_at = run.wait_until
                return None
            then = step.on_event if arrived else step.on_timeout
            _resume(run)
            what = f"{step.wait_event_name} {'arrived' if arrived else 'did not arrive in time'}"
            if then == LoopStep.Then.STOP:
                return _finish(run, LoopRun.Status.STOPPED, step, what + "; stopped")
            _note(run, step, what + "; continued")
        elif step.kind == LoopStep.Kind.FILTER:
            if not conditions_match(step.conditions, _subject(run, step.conditions)):
                return _finish(run, LoopRun.Status.FILTERED_OUT, step, "filtered out")
            _note(run, step, "matched the filter")
        elif step.kind == LoopStep.Kind.BRANCH:
            port = _branch_port(run, step)
            if port is None:
                return _finish(run, LoopRun.Status.FILTERED_OUT, step, "matched no path")
            run.choices[step_key(step.id)] = port
            _note(run, step, f"took the path “{step.paths[port].get('name', port + 1)}”", port=port)
        elif step.kind == LoopStep.Kind.EXPERIMENT:
            port = run.choices.get(step_key(step.id))
            if port is None:
                port = experiment_assign(run_id=run.id, step=step)
                run.choices[step_key(step.id)] = port
            _note(run, step, f"in the variant “{step.paths[port].get('name', port + 1)}”", port=port)
        elif step.kind == LoopStep.Kind.UPDATE_CONTACT:
            with changes_made_by(run):  # the change starts no loop behind this run (enrolling._changing)
                _note(run, step, contact_update_apply(contact=run.contact, step=step))
        _pass(run, step)
        run.step = None
    return None


def _subject(run: LoopRun, *trees: dict) -> Subject:
    needs_lists = any("lists" in conditions_fields(tree) for tree in trees)
    lists = (
        frozenset(ListMembership.objects.filter(contact_id=run.contact_id).values_list("mailing_list_id", flat=True))
        if needs_lists
        else frozenset()
    )
    return Subject(contact=run.contact, event=run.event.properties if run.event else {}, lists=lists)


def _branch_port(run: LoopRun, step: LoopStep) -> int | None:
    """The first path whose conditions the run matches (a path with none matches everyone)."""
    paths = step.paths or []
    subject = _subject(run, *(path.get("conditions") or {} for path in paths))
    for port, path in enumerate(paths):
        if conditions_match(path.get("conditions"), subject):
            return port
    return None


def experiment_assign(*, run_id: int, step: LoopStep) -> int:
    """A variant for this run, by the variants' percentages: drawn from a hash of the run and the step, so the
    same run always gets the same variant (recorded in its `choices` too)."""
    digest = hashlib.blake2b(f"{run_id}:{step.id}".encode(), digest_size=8).digest()
    point = int.from_bytes(digest, "big") % 10_000 / 100  # 0 <= point < 100
    total = 0.0
    for port, path in enumerate(step.paths):
        total += path.get("percent", 0)
        if point < total:
            return port
    return len(step.paths) - 1


def _event_arrived(run: LoopRun, name: str) -> bool:
    """Has the contact had this event since the one that started the run? Compared by when they
    happened at their source, not when they reached us: Stripe delivers out of order, and a payment
    made after the failure must stop the reminder even when it was processed first. (Events during an
    earlier timer count: "no payment since the failure" is what a dunning loop asks.)"""
    event = run.event  # None for a run not started by an event (no query then)
    since = event.occurred_at if event is not None else run.created_at
    arrived = Event.objects.filter(contact_id=run.contact_id, name=name, occurred_at__gte=since)
    if event is not None:
        arrived = arrived.exclude(id=event.id)
    return arrived.exists()


def runs_advance_due() -> int:
    """The beat task: advance every due run (timers that ran out, waits that timed out, lost wake-ups)."""
    return runs_drain()
