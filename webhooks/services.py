"""Webhook use cases: set up an endpoint, receive a delivery, process it, sweep what was left."""

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from uuid import UUID

import stripe
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from accounts.models import Team
from contacts.services import contact_sync
from loops.services import event_fire

from .models import Delivery, Endpoint, EventSetting
from .stripe_events import SUPPORTED_EVENTS

logger = logging.getLogger(__name__)

# A row left in `received` this long is re-enqueued by the sweeper (the broker was down, the
# message was lost). A `processing` claim older than its lease belongs to a worker that died.
SWEEP_AFTER = timedelta(minutes=1)
PROCESSING_LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 8
# Errors that can heal by themselves: the database or broker went away, a deadlock, a timeout.
TEMPORARY_ERRORS = (OperationalError, InterfaceError, BrokerError)


# --- endpoints -----------------------------------------------------------------------------------


def secret_validate(secret: str) -> str:
    secret = secret.strip()
    if not secret.startswith("whsec_") or len(secret) < 12 or any(c.isspace() for c in secret):
        raise ValidationError("A Stripe signing secret starts with whsec_ (Developers → Webhooks → Reveal).")
    return secret


@transaction.atomic
def endpoint_create(
    *,
    team: Team,
    secret: str = "",
    name: str = "Stripe",
    triggers: dict[str, str] | None = None,
    disabled: set[str] | frozenset[str] = frozenset(),
    tolerance: int = settings.WEBHOOK_DEFAULT_TOLERANCE_SECONDS,
) -> Endpoint:
    """An endpoint with one setting per supported type: all enabled unless `disabled`."""
    triggers = triggers or {}
    unknown = (set(triggers) | set(disabled)) - set(SUPPORTED_EVENTS)
    if unknown:
        raise ValidationError(
            f"Not a supported Stripe event type: {', '.join(sorted(unknown))}. "
            f"Supported: {', '.join(SUPPORTED_EVENTS)}."
        )
    if tolerance < 1:
        raise ValidationError("The signature tolerance must be at least one second.")
    endpoint = Endpoint.objects.create(
        team=team,
        name=name.strip() or "Stripe",
        signing_secret=secret_validate(secret) if secret else "",
        tolerance=tolerance,
    )
    EventSetting.objects.bulk_create(
        EventSetting(
            team=team,
            endpoint=endpoint,
            event_type=event_type,
            enabled=event_type not in disabled,
            trigger_event_name=triggers.get(event_type, "").strip(),
        )
        for event_type in SUPPORTED_EVENTS
    )
    return endpoint


# --- receiving -----------------------------------------------------------------------------------


class WebhookRejected(Exception):
    """The request is refused and nothing is stored."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Received:
    delivery_id: int | None
    status: str  # "queued", "ignored" or "duplicate"
    reason: str = ""


def endpoint_for_receive(*, endpoint_uuid: UUID) -> Endpoint:
    endpoint = Endpoint.objects.filter(uuid=endpoint_uuid, enabled=True, platform=Endpoint.Platform.STRIPE).first()
    if endpoint is None:
        raise WebhookRejected(404, "Unknown or disabled endpoint.")
    return endpoint


def _timestamp(value) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return datetime.fromtimestamp(value, tz=UTC)
    return None


def delivery_receive(*, endpoint: Endpoint, body: bytes, signature: str | None) -> Received:
    """Verify, store and enqueue one Stripe webhook. Raises WebhookRejected with nothing stored."""
    if not signature:
        raise WebhookRejected(400, "Missing Stripe-Signature header.")
    try:
        stripe.Webhook.construct_event(body, signature, endpoint.signing_secret, tolerance=endpoint.tolerance)
    except stripe.SignatureVerificationError as exc:
        raise WebhookRejected(400, f"Invalid signature: {exc.user_message or exc}") from None
    except (ValueError, AttributeError, TypeError):  # signed, but not UTF-8, not JSON or not an object
        raise WebhookRejected(400, "The body is not a Stripe event in JSON.") from None
    payload = json.loads(body)
    if (
        not isinstance(payload, dict)
        or not isinstance(payload.get("id"), str)
        or not isinstance(payload.get("type"), str)
    ):
        raise WebhookRejected(400, "The body is not a Stripe event: it needs an id and a type.")

    event_type = payload["type"]
    spec = SUPPORTED_EVENTS.get(event_type)
    reason = ""
    if spec is None:
        reason = Delivery.IgnoredReason.UNSUPPORTED
    elif not EventSetting.objects.filter(endpoint=endpoint, event_type=event_type, enabled=True).exists():
        reason = Delivery.IgnoredReason.DISABLED
    elif not spec.email(payload):
        reason = Delivery.IgnoredReason.NO_EMAIL

    now = timezone.now()
    try:
        with transaction.atomic():
            delivery = Delivery.objects.create(
                team_id=endpoint.team_id,
                endpoint=endpoint,
                stripe_event_id=payload["id"],
                event_type=event_type,
                livemode=bool(payload.get("livemode")),
                api_version=str(payload.get("api_version") or ""),
                account=str(payload.get("account") or ""),
                event_created=_timestamp(payload.get("created")),
                payload=payload,
                status=Delivery.Status.IGNORED if reason else Delivery.Status.RECEIVED,
                ignored_reason=reason,
                next_attempt_at=None if reason else now + SWEEP_AFTER,
            )
            if not reason:
                transaction.on_commit(partial(delivery_enqueue, delivery_id=delivery.id))
    except IntegrityError:
        if Delivery.objects.filter(endpoint=endpoint, stripe_event_id=payload["id"]).exists():
            return Received(delivery_id=None, status="duplicate")
        raise
    if reason:
        return Received(delivery_id=delivery.id, status="ignored", reason=reason)
    return Received(delivery_id=delivery.id, status="queued")


def delivery_enqueue(*, delivery_id: int) -> bool:
    """Wake a worker for this delivery. A broker outage is logged, not raised: the row is the truth
    and the sweeper enqueues it again later."""
    from .tasks import process_delivery

    try:
        process_delivery.delay(delivery_id)
    except BrokerError as exc:
        logger.warning("Broker unavailable; delivery %s will be swept later: %s", delivery_id, exc)
        return False
    return True


# --- processing ----------------------------------------------------------------------------------


def delivery_claim(*, delivery_id: int) -> bool:
    """Take the row for this worker. False: it is done, ignored, or another worker holds it."""
    now = timezone.now()
    claimable = Q(status=Delivery.Status.RECEIVED) | Q(status=Delivery.Status.PROCESSING, next_attempt_at__lte=now)
    claimed = Delivery.objects.filter(claimable, id=delivery_id).update(
        status=Delivery.Status.PROCESSING, attempts=F("attempts") + 1, next_attempt_at=now + PROCESSING_LEASE
    )
    return claimed == 1


def delivery_process(*, delivery_id: int) -> Delivery | None:
    """Claim, sync the contact, fire the endpoint's trigger event, mark processed.

    Temporary errors propagate (the task retries them); any other error marks the delivery failed.
    Returns None when the delivery was not claimable.
    """
    if not delivery_claim(delivery_id=delivery_id):
        return None
    delivery = Delivery.objects.select_related("team").get(id=delivery_id)
    try:
        _apply(delivery)
    except TEMPORARY_ERRORS:
        raise
    except Exception as exc:  # anything else will not heal by retrying: record it for the user
        logger.exception("Delivery %s failed", delivery_id)
        Delivery.objects.filter(id=delivery_id, status=Delivery.Status.PROCESSING).update(
            status=Delivery.Status.FAILED, last_error=f"{type(exc).__name__}: {exc}"[:2000], next_attempt_at=None
        )
    delivery.refresh_from_db()
    return delivery


def _apply(delivery: Delivery) -> None:
    spec = SUPPORTED_EVENTS.get(delivery.event_type)
    if spec is None:
        raise ValueError(f"{delivery.event_type} is not a supported event type")
    extracted = spec.extract(delivery.payload)
    if not extracted.email:
        raise ValueError("The event carries no email")
    setting = EventSetting.objects.filter(endpoint_id=delivery.endpoint_id, event_type=delivery.event_type).first()
    trigger = setting.trigger_event_name if setting else ""
    with transaction.atomic():
        sync = contact_sync(
            team=delivery.team,
            email=extracted.email,
            full_name=extracted.full_name,
            stripe_customer_id=extracted.customer_id,
            event_created=delivery.event_created,
            previous_email=extracted.previous_email,
        )
        if trigger:
            event_fire(
                team=delivery.team,
                contact=sync.contact,
                name=trigger,
                properties={
                    **extracted.properties,
                    "stripe_event_id": delivery.stripe_event_id,
                    "stripe_event_type": delivery.event_type,
                    "stripe_customer_id": extracted.customer_id,
                    "livemode": delivery.livemode,
                },
                source="stripe",
                idempotency_key=delivery.stripe_event_id,
            )
        Delivery.objects.filter(id=delivery.id, status=Delivery.Status.PROCESSING).update(
            status=Delivery.Status.PROCESSED, processed_at=timezone.now(), last_error="", next_attempt_at=None
        )


def delivery_release(*, delivery_id: int, error: str, retry_in: timedelta) -> None:
    """After a temporary error: back to `received` for a retry, or `failed` once attempts run out."""
    now = timezone.now()
    error = error[:2000]
    processing = Delivery.objects.filter(id=delivery_id, status=Delivery.Status.PROCESSING)
    processing.filter(attempts__gte=MAX_ATTEMPTS).update(
        status=Delivery.Status.FAILED,
        last_error=f"Gave up after {MAX_ATTEMPTS} attempts: {error}",
        next_attempt_at=None,
    )
    # The sweeper picks it up if the retry message is lost too; a little after the retry is due.
    processing.filter(attempts__lt=MAX_ATTEMPTS).update(
        status=Delivery.Status.RECEIVED, last_error=error, next_attempt_at=now + retry_in + SWEEP_AFTER
    )


def retry_delay(retries: int) -> timedelta:
    """Exponential backoff: 5 s, 10 s, 20 s … capped at 10 minutes."""
    return timedelta(seconds=min(5 * 2**retries, 600))


def deliveries_sweep(*, limit: int = 500) -> int:
    """Enqueue deliveries that are due: stalled in `received`, or claimed by a worker that died."""
    due = (
        Delivery.objects.filter(
            status__in=[Delivery.Status.RECEIVED, Delivery.Status.PROCESSING], next_attempt_at__lte=timezone.now()
        )
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:limit]
    )
    enqueued = 0
    for delivery_id in due:
        if not delivery_enqueue(delivery_id=delivery_id):
            break  # the broker is still down; the next sweep tries again
        enqueued += 1
    return enqueued
