"""Processing stored deliveries: claim, sync the contact, fire the trigger event, mark processed.

Workers drain `received` rows in batches (claimed with one UPDATE … SKIP LOCKED), woken by a coalesced
wake-up rather than one message per webhook; the periodic sweep wakes them for rows that were missed
and re-runs claims whose worker died.
"""

import logging
from datetime import timedelta
from functools import partial

from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.utils import timezone

from accounts.models import Team
from contacts.billing import contact_billing_apply
from contacts.models import UnsubscribedBy
from contacts.services import (
    contact_delete,
    contact_for_customer,
    contact_for_stripe,
    contact_set_subscribed,
    contact_sync_item,
    contacts_lock,
)
from loops.services import event_fire
from loopsync import work

from ..models import CustomerDeleted, Delivery, EventSetting, IgnoredReason
from ..stripe_events import SUPPORTED_EVENTS, Extracted
from .batching import (
    Options,
    apply_batch,
    batch_settings,
    contact_key,
    fire_keys,
    fire_properties,
    sync_item,
)
from .customers import customers_resolve, customers_unknown
from .receiving import ignored_reason

logger = logging.getLogger(__name__)

# A `processing` claim older than this belongs to a worker that died.
PROCESSING_LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 8
BATCH_SIZE = 50
DRAIN_BUDGET_SECONDS = 20  # then the task hands over to a fresh one, so other work gets a turn
# After a batch that was not full, the drain waits this long before its next claim: webhooks arriving while it
# works are then taken a few dozen at a time, not one or two (each batch costs a dozen statements).
DRAIN_LINGER_SECONDS = 0.25
TEMPORARY_ERRORS = work.TEMPORARY_ERRORS
RELEASING_ERRORS = work.RELEASING_ERRORS


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
    due = Delivery.objects.filter(Q(attempts=0) | Q(next_attempt_at__lte=now), status=Delivery.Status.RECEIVED)
    return work.claim(
        due,
        order_by=["id"],
        limit=limit,
        values={"status": Delivery.Status.PROCESSING, "next_attempt_at": now + PROCESSING_LEASE},
        increment=["attempts"],
    )


# --- processing ----------------------------------------------------------------------------------


def _extract(delivery: Delivery) -> Extracted:
    spec = SUPPORTED_EVENTS.get(delivery.event_type)
    if spec is None:
        raise ValueError(f"{delivery.event_type} is not a supported event type")
    extracted = spec.extract(delivery.payload)  # its email was checked when it was stored (ignored_reason)
    if not extracted.email and not (extracted.customer_id or extracted.charge_id):
        raise ValueError("The event carries no email and no customer")
    return extracted


def _ignore(delivery: Delivery, reason: str, note: str = "") -> None:
    Delivery.objects.filter(id=delivery.id, status=Delivery.Status.PROCESSING).update(
        status=Delivery.Status.IGNORED,
        ignored_reason=reason,
        last_error=note[:2000],
        processed_at=timezone.now(),
        next_attempt_at=None,
    )


def _apply(delivery: Delivery, extracted: Extracted, names: tuple[str, str], options: Options | None) -> None:
    team = Team(id=delivery.team_id)
    livemode = delivery.livemode
    with transaction.atomic():
        billing_pending = bool(extracted.billing)  # contact_sync applies it in its own write
        if delivery.event_type == "customer.deleted":
            contact = contact_for_stripe(
                team=team, livemode=livemode, email=extracted.email, customer_id=extracted.customer_id
            )
        elif extracted.email:
            item = sync_item(delivery, extracted, options)
            contact = contact_sync_item(item=item, previous_email=extracted.previous_email).contact
            billing_pending = False
        else:  # a subscription, a quote…: the contact that carries this Stripe customer
            contact = contact_for_customer(team=team, customer_id=extracted.customer_id, livemode=livemode)
        if contact is None:
            _ignore(delivery, IgnoredReason.CUSTOMER_UNKNOWN, _unknown_note(extracted, options))
            return
        if billing_pending and delivery.event_created is not None:
            contact_billing_apply(
                contact=contact, updates=list(extracted.billing), at=int(delivery.event_created.timestamp())
            )
        deleted = delivery.event_type == "customer.deleted" and _customer_deleted(contact, options)
        if extracted.fires and not deleted:
            _fire(delivery, extracted, contact, names)
        Delivery.objects.filter(id=delivery.id, status=Delivery.Status.PROCESSING).update(
            status=Delivery.Status.PROCESSED, processed_at=timezone.now(), last_error="", next_attempt_at=None
        )


def _unknown_note(extracted: Extracted, options: Options | None) -> str:
    who = extracted.customer_id or f"the customer of charge {extracted.charge_id}"
    if options and options.api_key:
        return f"No contact has the Stripe customer {who}, and Stripe has no email for it."
    return (
        f"No contact has the Stripe customer {who}. Import your customers (or save a Stripe key, so that "
        "LoopSync can ask Stripe for the email), then replay this delivery."
    )


def _customer_deleted(contact, options: Options | None) -> bool:
    """The endpoint's choice for a customer deleted in Stripe. True when the contact is gone."""
    if options and options.customer_deleted == CustomerDeleted.DELETE:
        contact_delete(contact=contact)
        return True
    contact_set_subscribed(contact=contact, subscribed=False, by=UnsubscribedBy.STRIPE)
    return False


def _fire(delivery: Delivery, extracted: Extracted, contact, names: tuple[str, str]) -> None:
    events_fire(
        contact=contact,
        names=names,
        key=delivery.stripe_event_id,
        occurred_at=delivery.event_created,
        properties=fire_properties(delivery, extracted, contact),
    )


def events_fire(*, contact, names: tuple[str, str], key: str, properties: dict, occurred_at=None) -> int:
    """A type's event and its additional custom event (Loops' "Trigger an additional custom event"), each once
    per `key`, however often it is asked. Returns how many were fired now."""
    fired = 0
    for name, idempotency_key in zip(names, fire_keys(key), strict=True):
        if name:
            result = event_fire(
                team=Team(id=contact.team_id),
                contact=contact,
                name=name,
                properties=properties,
                source="stripe",
                idempotency_key=idempotency_key,
                occurred_at=occurred_at,
            )
            fired += int(result.created)
    return fired


def _process(deliveries: list[Delivery], *, look_up: bool = False) -> None:
    """Process claimed deliveries in one transaction, each in its own savepoint: one commit per batch,
    and a delivery that fails permanently is marked failed without undoing the others. A temporary
    error undoes the batch and releases every row in it for a retry.

    A delivery about a customer no contact carries, on an endpoint with a Stripe key, needs a call to
    Stripe. The shared drain never makes one (one team's slow Stripe must not hold up the others): it
    hands the delivery to a task of its own (`look_up`), which calls Stripe before its transaction opens."""
    triggers, options = batch_settings(deliveries)
    extracted: dict[int, Extracted] = {}
    for delivery in deliveries:
        try:
            extracted[delivery.id] = _extract(delivery)
        except Exception as exc:  # the payload will not change: record why
            _fail(delivery, exc)
    api_keys = _api_keys(options)
    if look_up:
        extracted, unanswered = customers_resolve(deliveries=deliveries, extracted=extracted, api_keys=api_keys)
        for delivery in deliveries:
            if delivery.id in unanswered:
                _look_up_failed(delivery, unanswered[delivery.id])
    else:
        for delivery in customers_unknown(deliveries=deliveries, extracted=extracted, api_keys=api_keys):
            _look_up_later(delivery)
            del extracted[delivery.id]
    # contacts_lock takes every lock the batch needs first, in one global order (see there), so the batch keeps
    # its delivery order and still never waits on another in a circle.
    ordered = [d for d in deliveries if d.id in extracted]
    try:
        with transaction.atomic():
            locked = contacts_lock(keys=[contact_key(d, extracted[d.id]) for d in ordered])
            for delivery in apply_batch(ordered, extracted, triggers, options, locked):
                try:
                    _apply(
                        delivery,
                        extracted[delivery.id],
                        triggers.get((delivery.endpoint_id, delivery.event_type), ("", "")),
                        options.get(delivery.endpoint_id),
                    )
                except RELEASING_ERRORS:
                    raise
                except Exception as exc:  # will not heal by retrying: record it for the user
                    _fail(delivery, exc)
    except RELEASING_ERRORS as exc:
        # Only the rows this transaction held: one handed to process_delivery is that task's now.
        if work.is_contention(exc):  # lost a race with another transaction: again at once, for free
            for delivery in ordered:
                delivery_retry_now(delivery_id=delivery.id)
            work.wake(work.DRAIN_DELIVERIES)
            logger.info("A batch of %s deliveries lost a race (%s); it is taken again at once", len(ordered), exc)
            return
        for delivery in ordered:
            delivery_release(delivery_id=delivery.id, error=f"{type(exc).__name__}: {exc}")
        raise


def _look_up_later(delivery: Delivery) -> None:
    """Leave the claim to `process_delivery`, at once: its lease is over, so that task can take it (and the
    sweep, should the message be lost)."""
    Delivery.objects.filter(id=delivery.id, status=Delivery.Status.PROCESSING).update(next_attempt_at=timezone.now())
    work.enqueue_on_commit(work.PROCESS_DELIVERY, delivery.id)


def _look_up_failed(delivery: Delivery, error: str) -> None:
    """Stripe could not say who the customer is: retried with backoff, then kept as "customer unknown" (an
    import or a replay processes it later), never failed for Stripe's outage."""
    attempts = Delivery.objects.filter(id=delivery.id).values_list("attempts", flat=True).first() or 0
    if attempts >= MAX_ATTEMPTS:
        _ignore(delivery, IgnoredReason.CUSTOMER_UNKNOWN, f"Stripe did not answer after {attempts} attempts: {error}")
    else:
        delivery_release(delivery_id=delivery.id, error=error)


def _api_keys(options: dict[int, Options]) -> dict[int, str]:
    return {endpoint_id: o.api_key for endpoint_id, o in options.items() if o.api_key}


def _fail(delivery: Delivery, exc: Exception) -> None:
    logger.exception("Delivery %s failed", delivery.id)
    Delivery.objects.filter(id=delivery.id, status=Delivery.Status.PROCESSING).update(
        status=Delivery.Status.FAILED, last_error=f"{type(exc).__name__}: {exc}"[:2000], next_attempt_at=None
    )


def delivery_process(*, delivery_id: int) -> Delivery | None:
    """Claim and process one delivery (replays, claims whose worker died). None: not claimable."""
    if not delivery_claim(delivery_id=delivery_id):
        return None
    delivery = Delivery.objects.get(id=delivery_id)
    _process([delivery], look_up=True)
    delivery.refresh_from_db()
    return delivery


def deliveries_drain(*, batch_size: int = BATCH_SIZE, budget_seconds: float = DRAIN_BUDGET_SECONDS) -> int:
    """Process received deliveries batch by batch until none is left (or the time budget is spent)."""

    def process(deliveries: list[Delivery]) -> bool:
        _process(deliveries)
        return True

    return work.drain(
        claim=lambda limit: deliveries_claim(limit=limit),
        process=process,
        wake=partial(work.wake, work.DRAIN_DELIVERIES),
        batch_size=batch_size,
        budget_seconds=budget_seconds,
        linger_seconds=DRAIN_LINGER_SECONDS,
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


def delivery_retry_now(*, delivery_id: int) -> None:
    """After a deadlock or serialization failure, which is no fault of the delivery: `received` again and due
    now, with the attempt it took given back."""
    Delivery.objects.filter(id=delivery_id, status=Delivery.Status.PROCESSING).update(
        status=Delivery.Status.RECEIVED, attempts=Greatest(F("attempts") - 1, 0), next_attempt_at=timezone.now()
    )


def deliveries_sweep() -> int:
    """Wake the drain for received rows whose wake-up was lost or whose backoff is over, and re-run
    claims whose worker died. Returns how many rows were due."""
    now = timezone.now()
    due = Delivery.objects.filter(next_attempt_at__lte=now)
    received = due.filter(status=Delivery.Status.RECEIVED).count()
    stale = list(due.filter(status=Delivery.Status.PROCESSING).values_list("id", flat=True)[:500])
    if received:
        work.wake(work.DRAIN_DELIVERIES)
    for delivery_id in stale:
        if not work.enqueue(work.PROCESS_DELIVERY, delivery_id):
            break  # the broker is down: the next sweep tries again
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
    work.wake_on_commit(work.DRAIN_DELIVERIES)
    return Delivery.Status.RECEIVED
