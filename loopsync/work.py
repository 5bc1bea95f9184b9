"""Background work in one place: the queue, the task names, coalesced wake-ups, the claim statement and
the drain loop.

The direction is HackSoft's: tasks call services; a service starts work only as a side effect of its
commit, and only by the task's name (`wake_on_commit(DRAIN_DELIVERIES)`). So no service imports a task,
and no import cycle runs through the tasks modules.

The database rows are the truth. A wake-up is only a hint that work is waiting: when Redis or the broker
is down nothing is lost, and the periodic sweeps (CELERY_BEAT_SCHEDULE) wake the drains once it is back.
Messages are acknowledged when a worker takes them (no `acks_late`): a message lost with its worker costs
nothing, as every row is claimed with a lease and a claim whose worker died is taken again.

Coalescing: `wake(name)` publishes only when no wake-up for that name is pending (a Redis `SET NX` with an
expiry), and the woken task calls `wake_clear(name)` as it starts, before it looks for work. So work
committed before a wake is always seen by a task that starts after it, while a burst of a thousand
webhooks publishes a handful of tasks instead of a thousand.
"""

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import cache, partial
from operator import attrgetter
from typing import Any, TypeVar

import redis
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import FieldError
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Field, Model, QuerySet
from kombu.exceptions import OperationalError as BrokerError

from loopsync.celery import app

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=Model)
T = TypeVar("T")
B = TypeVar("B", bound=Sequence[Any])  # a claimed batch

# --- the tasks, by name: each tasks module registers its tasks under these -----------------------------
DRAIN_DELIVERIES = "webhooks.tasks.drain_deliveries"
PROCESS_DELIVERY = "webhooks.tasks.process_delivery"
SWEEP_DELIVERIES = "webhooks.tasks.sweep_deliveries"
RUN_STRIPE_SYNC = "webhooks.tasks.run_stripe_sync"
SWEEP_STRIPE_SYNCS = "webhooks.tasks.sweep_stripe_syncs"
RUN_CONTACT_IMPORT = "contacts.tasks.run_contact_import"
SWEEP_CONTACT_IMPORTS = "contacts.tasks.sweep_contact_imports"
DRAIN_RUNS = "loops.tasks.drain_runs"
ADVANCE_DUE_RUNS = "loops.tasks.advance_due_runs"
DRAIN_EMAILS = "loops.tasks.drain_emails"
SWEEP_EMAILS = "loops.tasks.sweep_emails"
CHECK_SENDER_DOMAIN = "accounts.tasks.check_sender_domain"

# Errors that can heal by themselves: the database or broker went away, a deadlock, a timeout.
TEMPORARY_ERRORS = (OperationalError, InterfaceError, BrokerError)
# What undoes a batch and releases its rows: those, and the task's time limit (CELERY_TASK_SOFT_TIME_LIMIT),
# which is no fault of the work and must never mark it failed.
RELEASING_ERRORS = (*TEMPORARY_ERRORS, SoftTimeLimitExceeded)
# PostgreSQL's SQLSTATEs for losing a race with another transaction: retried at once, and never counted as
# one of a row's attempts.
CONTENTION_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure

PENDING_TTL_MS = 10_000  # a wake-up whose task never started (a lost message) stops blocking after this


def is_contention(exc: BaseException) -> bool:
    """A deadlock or serialization failure: nobody's fault, and gone when tried again."""
    cause = exc.__cause__ if isinstance(exc, OperationalError) else exc
    return getattr(cause, "sqlstate", None) in CONTENTION_SQLSTATES


# --- outages are logged once, not once per webhook -------------------------------------------------------


class _Outage:
    """One WARNING when a service goes away, one INFO when it is back; what fails in between is DEBUG."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.down = False
        self._lock = threading.Lock()

    def failed(self, exc: Exception) -> None:
        with self._lock:
            first, self.down = not self.down, True
        if first:
            logger.warning(
                "%s unavailable; waiting work is taken up by the sweeps once it is back: %s", self.service, exc
            )
        else:
            logger.debug("%s still unavailable: %s", self.service, exc)

    def ok(self) -> None:
        if not self.down:
            return
        with self._lock:
            back, self.down = self.down, False
        if back:
            logger.info("%s is back", self.service)


broker_outage = _Outage("The broker (Redis)")


# --- publishing ----------------------------------------------------------------------------------------


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)


def _redis() -> redis.Redis | None:
    """Only a Redis broker can hold the pending mark; with another broker every wake publishes."""
    url = settings.CELERY_BROKER_URL
    if app.conf.task_always_eager or not url.startswith(("redis://", "rediss://")):
        return None
    return _client(url)


def _pending_key(name: str) -> str:
    return f"loopsync:wake:{app.conf.task_default_queue}:{name}"


@cache
def _registered_tasks() -> Any:
    app.loader.import_default_modules()  # the tasks modules, as a worker imports them at start-up
    return app.tasks


def enqueue(name: str, *args: Any) -> bool:
    """Publish the task `name` with `args` (ids, never objects). False when the broker is down: the sweeps
    start the work later."""
    if app.conf.task_always_eager:  # no broker (`make run` on SQLite): the task runs here, as `delay()` would
        _registered_tasks()[name].apply(args=args)
        return True
    try:
        app.send_task(name, args=args)
    except BrokerError as exc:
        broker_outage.failed(exc)
        return False
    broker_outage.ok()
    return True


def wake(name: str) -> bool:
    """Publish the drain `name` unless a wake-up for it is already pending. True when published."""
    client = _redis()
    if client is not None:
        try:
            if not client.set(_pending_key(name), b"1", nx=True, px=PENDING_TTL_MS):
                return False
        except redis.RedisError as exc:
            broker_outage.failed(exc)
            return False
    if not enqueue(name):
        wake_clear(name)
        return False
    return True


def wake_clear(name: str) -> None:
    """Called by the woken drain as it starts: wake-ups from now on publish again."""
    client = _redis()
    if client is None:
        return
    try:
        client.delete(_pending_key(name))
    except redis.RedisError as exc:
        broker_outage.failed(exc)


def wake_on_commit(name: str) -> None:
    """Wake the drain `name` once the current transaction commits (at once outside one)."""
    transaction.on_commit(partial(wake, name))


class _Coalescer:
    """This process's wake-ups, sent from a thread of its own at most once per name per WAKE_INTERVAL_SECONDS.

    A web process receiving a burst of webhooks asks for a drain with every one; the thread sends the first at
    once and gathers what comes in the next interval into one more, so a burst costs one Redis call per process
    per interval instead of one per request, and no request waits on Redis. Each ask is followed by a `wake`
    that starts after it (the pending mark then guarantees a drain sees the row). Started in the process that
    asks first (after a fork, anew); what is still gathered at exit is sent then."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._names: set[str] = set()
        self._asked = threading.Event()
        self._lock = threading.Lock()
        self._sending = threading.Lock()  # one flush at a time: a flush returns once what it saw is sent
        self._pid = 0
        os.register_at_fork(after_in_child=self._forked)
        atexit.register(self.flush)

    def _forked(self) -> None:
        self._names, self._asked, self._pid = set(), threading.Event(), 0
        self._lock, self._sending = threading.Lock(), threading.Lock()

    def ask(self, name: str) -> None:
        with self._lock:
            self._names.add(name)
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="loopsync-wake", daemon=True).start()
        self._asked.set()

    def flush(self) -> None:
        """Send what is gathered, now, in this thread (after a flush under way in another has sent its own)."""
        with self._sending:
            self._asked.clear()
            with self._lock:
                names, self._names = self._names, set()
            for name in sorted(names):
                try:
                    wake(name)
                except Exception:  # the thread must live on: the sweeps make up for a wake-up lost here
                    logger.exception("Waking %s failed", name)

    def _run(self) -> None:
        while True:
            self._asked.wait()
            self.flush()
            time.sleep(self.interval)


WAKE_INTERVAL_SECONDS = 0.2
_coalescer = _Coalescer(WAKE_INTERVAL_SECONDS)


def wake_soon(name: str) -> None:
    """Wake the drain `name` within WAKE_INTERVAL_SECONDS, coalesced with this process's other asks (see
    `_Coalescer`); for a path as hot as receiving webhooks. Call it after the work is committed. Without a
    broker (tasks run in-process) it wakes at once, here."""
    if app.conf.task_always_eager:
        wake(name)
    else:
        _coalescer.ask(name)


def wakes_flush() -> None:
    """Send this process's gathered wake-ups now and return once they are sent (tests, and before a fork)."""
    _coalescer.flush()


def wake_soon_on_commit(name: str) -> None:
    transaction.on_commit(partial(wake_soon, name))


def enqueue_on_commit(name: str, *args: Any) -> None:
    transaction.on_commit(partial(enqueue, name, *args))


# --- claiming and draining -------------------------------------------------------------------------------


def column(field: Field) -> str:
    """A concrete field's column, quoted for raw SQL (only a field without one, a many-to-many, has None)."""
    if field.column is None:
        raise FieldError(f"{field} has no column")
    return connection.ops.quote_name(field.column)


def _own_field(model: type[Model], name: str) -> Field:
    """The field `name` of the model's own table (not a reverse relation): what a claim may set."""
    field = model._meta.get_field(name)
    if not isinstance(field, Field):
        raise FieldError(f"{model._meta.label}.{name} is a reverse relation")
    return field


def _assignments(
    model: type[Model], values: Mapping[str, Any], increment: Sequence[str]
) -> tuple[list[str], list[Any]]:
    """An UPDATE's `column = %s` assignments and their parameters, and `counter = counter + 1` for `increment`."""
    assignments, params = [], []
    for name, value in values.items():
        field = _own_field(model, name)
        assignments.append(f"{column(field)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    for name in increment:
        counter = column(_own_field(model, name))
        assignments.append(f"{counter} = {counter} + 1")
    return assignments, params


def claim(
    due: QuerySet[M], *, order_by: Sequence[str], limit: int, values: Mapping[str, Any], increment: Sequence[str] = ()
) -> list[M]:
    """The one claim statement: take up to `limit` rows of `due`, in `order_by` order, and set `values` on them
    (and add 1 to each field of `increment`), in one UPDATE. Rows other workers are taking are skipped, not
    waited for (SKIP LOCKED). Returns the claimed rows as they are after the update, in claim order."""
    model = due.model
    meta = model._meta
    table = connection.ops.quote_name(meta.db_table)
    inner, inner_params = due.order_by(*order_by).values("pk")[:limit].query.sql_with_params()
    lock = f" FOR UPDATE OF {table} SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    assignments, params = _assignments(model, values, increment)
    pk = column(meta.pk)
    sql = (
        f"UPDATE {table} SET {', '.join(assignments)} "  # noqa: S608 - names from the model, values bound
        f"WHERE {pk} IN ({inner}{lock}) RETURNING *"
    )
    rows = list(model._default_manager.raw(sql, [*params, *inner_params]))
    for name in reversed(order_by):  # RETURNING gives no order: sort, one key at a time, last key first
        rows.sort(key=attrgetter(_own_field(model, name.lstrip("-")).attname), reverse=name.startswith("-"))
    return rows


def update_row(
    model: type[Model], pk: Any, *, where: Mapping[str, Any], values: Mapping[str, Any], increment: Sequence[str] = ()
) -> bool:
    """`model.objects.filter(pk=pk, **where).update(**values)` with plain values (and 1 added to each field of
    `increment`), as one UPDATE written here rather than by the ORM's compiler: on the email path, compiling the
    query cost more than running it. Committed on its own outside a transaction. True when the row was updated."""
    meta = model._meta
    assignments, params = _assignments(model, values, increment)
    conditions = [f"{column(meta.pk)} = %s"]
    params.append(pk)
    for name, value in where.items():
        field = _own_field(model, name)
        if value is None:  # as filter(name=None): `= NULL` would match no row
            conditions.append(f"{column(field)} IS NULL")
            continue
        conditions.append(f"{column(field)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    sql = (
        f"UPDATE {connection.ops.quote_name(meta.db_table)} SET {', '.join(assignments)} "  # noqa: S608 - model names
        f"WHERE {' AND '.join(conditions)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount == 1


def drain(
    *,
    claim: Callable[[int], B],
    process: Callable[[B], bool],
    wake: Callable[[], object],
    batch_size: int,
    budget_seconds: float,
    linger_seconds: float = 0.0,
) -> int:
    """Claim and process batches until a claim comes back empty. A full batch wakes another worker to share
    what is left; past the time budget this one hands over to a fresh task, so other work queued behind it
    gets a turn. `process` returns False to stop early (a temporary failure). Returns how many items were
    claimed.

    `linger_seconds`: after a batch that was not full, wait this long before the next claim, so that work
    arriving as a trickle (webhooks while they are received) is taken in batches worth their fixed cost
    rather than a few rows at a time; the first batch is never delayed."""
    started = time.monotonic()
    done = 0
    lingering = False
    while True:
        if lingering:
            time.sleep(linger_seconds)
        batch = claim(batch_size)
        if not batch:
            return done
        if len(batch) == batch_size:
            wake()
        done += len(batch)
        lingering = linger_seconds > 0 and len(batch) < batch_size
        if not process(batch):
            return done
        if time.monotonic() - started > budget_seconds:
            wake()
            return done


# --- what every task does with an error that can heal --------------------------------------------------

TIME_LIMIT_REACHED = "%s reached the task time limit (CELERY_TASK_SOFT_TIME_LIMIT); another task takes over"


def guarded(what: str, job: Callable[[], T], *, default: T, hand_over: Callable[[], object] | None = None) -> T:
    """Run a task's job so that an error that can heal ends the task cleanly, with one line in the log and no
    traceback: the rows it had claimed were released by the job, and the sweep (or `hand_over`, for the time
    limit) resumes the work. A failing task would only be logged, then retried by nobody."""
    try:
        return job()
    except TEMPORARY_ERRORS as exc:
        logger.warning("%s stopped on a temporary error; the sweep resumes it: %s", what, exc)
        return default
    except SoftTimeLimitExceeded:
        logger.warning(TIME_LIMIT_REACHED, what)
        if hand_over is not None:
            hand_over()
        return default
