"""Processing stored deliveries: claim, sync the contact, fire the trigger event, mark processed.

Workers drain `received` rows in batches (claimed with one UPDATE … SKIP LOCKED), woken by a coalesced
wake-up rather than one message per webhook; the periodic sweep wakes them for rows that were missed
and re-runs claims whose worker died.
"""

import json
import logging
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from accounts.models import Team
from contacts.services import contact_sync
from loops.services import event_fire
from loopsync.drain import drain

from .models import Delivery, EventSetting
from .receiving import deliveries_wake, email_valid, ignored_reason
from .stripe_events import SUPPORTED_EVENTS

logger = logging.getLogger(__name__)

# A `processing` claim older than this belongs to a worker that died.
PROCESSING_LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 8
BATCH_SIZE = 50
DRAIN_BUDGET_SECONDS = 20  # then the task hands over to a fresh one, so other work gets a turn
# Errors that can heal by themselves: the database or broker went away, a deadlock, a timeout.
TEMPORARY_ERRORS = (OperationalError, InterfaceError, BrokerError)
# What undoes a batch and releases its rows: those, and the task's time limit (CELERY_TASK_SOFT_TIME_LIMIT),
# which is no fault of a delivery and must never mark one failed.
RELEASING_ERRORS = (*TEMPORARY_ERRORS, SoftTimeLimitExceeded)


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff by attempt: 5 s, 10 s, 20 s … capped at 10 minutes."""
    return timedelta(seconds=min(5 * 2 ** max(attempts - 1, 0), 600))


# --- claiming ------------------------------------------------------------------------------------


def delivery_claim(*, delivery_id: int) -> bool:
    """Take one row. False: it is done, ignored, or another worker holds it (lease not run out)."""
    now = timezone.now()
    claimable = Q(status=Delivery.Status.RECEIVED) | Q(status=Delivery.Status.PROCESSING, next_attempt_at__lte=now)
    claimed = Delivery.objects.filter(claimable, id=delivery_id).update(
        status=Delivery.Status.PROCESSING, attempts=F("attempts") + 1, next_attempt_at=now + PROCESSING_LEASE
    )
    return claimed == 1


def deliveries_claim(*, limit: int = BATCH_SIZE) -> list[Delivery]:
    """Take up to `limit` received rows that are due, in one statement; rows other workers are taking
    are skipped, not waited for. A row released after a temporary error waits for its backoff."""
    now = timezone.now()
    table = Delivery._meta.db_table
    lock = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    sql = (
        f"UPDATE {table} SET status = %s, attempts = attempts + 1, next_attempt_at = %s "  # noqa: S608 - no input
        f"WHERE id IN (SELECT id FROM {table} WHERE status = %s AND (attempts = 0 OR next_attempt_at <= %s) "
        f"ORDER BY id LIMIT %s{lock}) RETURNING *"
    )
    params = [Delivery.Status.PROCESSING, now + PROCESSING_LEASE, Delivery.Status.RECEIVED, now, limit]
    deliveries = sorted(Delivery.objects.raw(sql, params), key=lambda d: d.id)
    for delivery in deliveries:
        if isinstance(delivery.payload, str):  # SQLite's RETURNING skips the JSON field's conversion
            delivery.payload = json.loads(delivery.payload)
    return deliveries


# --- processing ----------------------------------------------------------------------------------


def _triggers(deliveries: list[Delivery]) -> dict[tuple[int, str], str]:
    pairs = Q()
    for delivery in deliveries:
        pairs |= Q(endpoint_id=delivery.endpoint_id, event_type=delivery.event_type)
    rows = EventSetting.objects.filter(pairs).values_list("endpoint_id", "event_type", "trigger_event_name")
    return {(endpoint_id, event_type): name for endpoint_id, event_type, name in rows}


def _apply(delivery: Delivery, trigger: str) -> None:
    spec = SUPPORTED_EVENTS.get(delivery.event_type)
    if spec is None:
        raise ValueError(f"{delivery.event_type} is not a supported event type")
    extracted = spec.extract(delivery.payload)
    if not extracted.email:
        raise ValueError("The event carries no email")
    if not email_valid(extracted.email):
        raise ValueError(f"The event's email is not valid: {extracted.email[:100]!r}")
    team = Team(id=delivery.team_id)
    with transaction.atomic():
        sync = contact_sync(
            team=team,
            livemode=delivery.livemode,
            email=extracted.email,
            full_name=extracted.full_name,
            stripe_customer_id=extracted.customer_id,
            event_created=delivery.event_created,
            previous_email=extracted.previous_email,
        )
        if trigger:
            event_fire(
                team=team,
                contact=sync.contact,
                name=trigger,
                properties={
                    **extracted.properties,
                    "stripe_event_id": delivery.stripe_event_id,
                    "stripe_event_type": delivery.event_type,
                    "stripe_customer_id": extracted.customer_id,
                    "livemode": sync.contact.livemode,
                },
                source="stripe",
                idempotency_key=delivery.stripe_event_id,
                occurred_at=delivery.event_created,
            )
        Delivery.objects.filter(id=delivery.id, status=Delivery.Status.PROCESSING).update(
            status=Delivery.Status.PROCESSED, processed_at=timezone.now(), last_error="", next_attempt_at=None
        )


def _process(deliveries: list[Delivery]) -> None:
    """Process claimed deliveries in one transaction, each in its own savepoint: one commit per batch,
    and a delivery that fails permanently is marked failed without undoing the others. A temporary
    error undoes the batch and releases every row in it for a retry."""
    triggers = _triggers(deliveries)
    try:
        with transaction.atomic():
            for delivery in deliveries:
                try:
                    _apply(delivery, triggers.get((delivery.endpoint_id, delivery.event_type), ""))
                except RELEASING_ERRORS:
                    raise
                except Exception as exc:  # will not heal by retrying: record it for the user
                    logger.exception("Delivery %s failed", delivery.id)
                    Delivery.objects.filter(id=delivery.id, status=Delivery.Status.PROCESSING).update(
                        status=Delivery.Status.FAILED,
                        last_error=f"{type(exc).__name__}: {exc}"[:2000],
                        next_attempt_at=None,
                    )
    except RELEASING_ERRORS as exc:
        for delivery in deliveries:
            delivery_release(delivery_id=delivery.id, error=f"{type(exc).__name__}: {exc}")
        raise


def delivery_process(*, delivery_id: int) -> Delivery | None:
    """Claim and process one delivery (replays, claims whose worker died). None: not claimable."""
    if not delivery_claim(delivery_id=delivery_id):
        return None
    delivery = Delivery.objects.get(id=delivery_id)
    _process([delivery])
    delivery.refresh_from_db()
    return delivery


def deliveries_drain(*, batch_size: int = BATCH_SIZE, budget_seconds: float = DRAIN_BUDGET_SECONDS) -> int:
    """Process received deliveries batch by batch until none is left (or the time budget is spent)."""

    def process(deliveries: list[Delivery]) -> bool:
        _process(deliveries)
        return True

    return drain(
        claim=lambda limit: deliveries_claim(limit=limit),
        process=process,
        wake=deliveries_wake,
        batch_size=batch_size,
        budget_seconds=budget_seconds,
    )


def delivery_release(*, delivery_id: int, error: str) -> None:
    """After a temporary error: back to `received` after a backoff, or `failed` once attempts run out."""
    error = error[:2000]
    processing = Delivery.objects.filter(id=delivery_id, status=Delivery.Status.PROCESSING)
    delivery = processing.only("attempts").first()
    if delivery is None:
        return
    if delivery.attempts >= MAX_ATTEMPTS:
        processing.update(
            status=Delivery.Status.FAILED,
            last_error=f"Gave up after {MAX_ATTEMPTS} attempts: {error}",
            next_attempt_at=None,
        )
    else:
        processing.update(
            status=Delivery.Status.RECEIVED,
            last_error=error,
            next_attempt_at=timezone.now() + retry_delay(delivery.attempts),
        )


def deliveries_sweep() -> int:
    """Wake the drain for received rows whose wake-up was lost or whose backoff is over, and re-run
    claims whose worker died. Returns how many rows were due."""
    from .tasks import process_delivery

    now = timezone.now()
    due = Delivery.objects.filter(next_attempt_at__lte=now)
    received = due.filter(status=Delivery.Status.RECEIVED).count()
    stale = list(due.filter(status=Delivery.Status.PROCESSING).values_list("id", flat=True)[:500])
    if received:
        deliveries_wake()
    for delivery_id in stale:
        try:
            process_delivery.delay(delivery_id)
        except BrokerError as exc:
            logger.warning("Broker unavailable; stale delivery %s is retried at the next sweep: %s", delivery_id, exc)
            break
    return received + len(stale)


def delivery_replay(*, delivery: Delivery) -> str:
    """Send a failed or ignored delivery through the pipeline again. An ignored one is looked at anew
    (its type may have been ticked since, or it was a type we did not support). Returns the new status."""
    if delivery.status not in {Delivery.Status.FAILED, Delivery.Status.IGNORED}:
        return delivery.status
    reason = ignored_reason(
        spec=SUPPORTED_EVENTS.get(delivery.event_type),
        type_enabled=EventSetting.objects.filter(
            endpoint_id=delivery.endpoint_id, event_type=delivery.event_type, enabled=True
        ).exists(),
        payload=delivery.payload,
        endpoint_livemode=delivery.endpoint.livemode,
        sample=delivery.sample,
    )
    if reason:
        Delivery.objects.filter(id=delivery.id).update(status=Delivery.Status.IGNORED, ignored_reason=reason)
        return Delivery.Status.IGNORED
    replayable = Q(status=Delivery.Status.FAILED) | Q(status=Delivery.Status.IGNORED)
    Delivery.objects.filter(replayable, id=delivery.id).update(
        status=Delivery.Status.RECEIVED, ignored_reason="", attempts=0, next_attempt_at=timezone.now()
    )
    transaction.on_commit(deliveries_wake)
    return Delivery.Status.RECEIVED
