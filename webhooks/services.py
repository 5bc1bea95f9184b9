"""Webhook use cases: set up an endpoint, receive a delivery, process it, sweep what was left."""

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import stripe
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts.models import Team
from contacts.models import Contact
from loops.services import event_name_validate
from loopsync.wakeup import wake

from . import samples
from .models import Delivery, Endpoint, EventSetting
from .stripe_events import SUPPORTED_EVENTS

logger = logging.getLogger(__name__)

# A row left in `received` this long is woken again by the sweeper (the broker was down, the
# wake-up was lost).
SWEEP_AFTER = timedelta(minutes=1)


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


@dataclass(frozen=True)
class ReceivingEndpoint:
    """What the receive path needs of an endpoint, read in one query."""

    id: int
    team_id: int
    signing_secret: str
    tolerance: int
    type_enabled: bool


def endpoint_for_receive(*, endpoint_uuid: UUID, event_type: str) -> ReceivingEndpoint:
    """The enabled endpoint with this UUID, and whether it accepts `event_type`, or a 404."""
    enabled = EventSetting.objects.filter(endpoint=OuterRef("pk"), event_type=event_type, enabled=True)
    row = (
        Endpoint.objects.filter(uuid=endpoint_uuid, enabled=True, platform=Endpoint.Platform.STRIPE)
        .annotate(type_enabled=Exists(enabled))
        .values_list("id", "team_id", "signing_secret", "tolerance", "type_enabled")
        .first()
    )
    if row is None:
        raise WebhookRejected(404, "Unknown or disabled endpoint.")
    return ReceivingEndpoint(*row)


def _timestamp(value) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return datetime.fromtimestamp(value, tz=UTC)
    return None


def _parse(body: bytes) -> dict | None:
    try:
        payload = json.loads(body)
    except ValueError:  # not UTF-8 or not JSON
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("id"), str):
        return None
    return payload if isinstance(payload.get("type"), str) else None


def delivery_receive(*, endpoint_uuid: UUID, body: bytes, signature: str | None) -> Received:
    """Verify, store and wake a worker for one Stripe webhook. Raises WebhookRejected (nothing stored).

    The body is parsed before it is verified only to learn its type, so that the endpoint and the
    type's setting are read in one query; nothing is trusted or stored before the signature holds.
    """
    payload = _parse(body)
    event_type = payload["type"] if payload else ""
    endpoint = endpoint_for_receive(endpoint_uuid=endpoint_uuid, event_type=event_type)
    if not signature:
        raise WebhookRejected(400, "Missing Stripe-Signature header.")
    try:
        stripe.Webhook.construct_event(body, signature, endpoint.signing_secret, tolerance=endpoint.tolerance)
    except stripe.SignatureVerificationError as exc:
        raise WebhookRejected(400, f"Invalid signature: {exc.user_message or exc}") from None
    except (ValueError, AttributeError, TypeError):  # signed, but not UTF-8, not JSON or not an object
        raise WebhookRejected(400, "The body is not a Stripe event in JSON.") from None
    if payload is None:
        raise WebhookRejected(400, "The body is not a Stripe event: it needs an id and a type.")

    spec = SUPPORTED_EVENTS.get(event_type)
    reason = ""
    if spec is None:
        reason = Delivery.IgnoredReason.UNSUPPORTED
    elif not endpoint.type_enabled:
        reason = Delivery.IgnoredReason.DISABLED
    elif not spec.email(payload):
        reason = Delivery.IgnoredReason.NO_EMAIL

    try:
        delivery = _insert(
            Delivery(
                team_id=endpoint.team_id,
                endpoint_id=endpoint.id,
                stripe_event_id=payload["id"],
                event_type=event_type,
                livemode=bool(payload.get("livemode")),
                api_version=str(payload.get("api_version") or ""),
                account=str(payload.get("account") or ""),
                event_created=_timestamp(payload.get("created")),
                payload=payload,
                status=Delivery.Status.IGNORED if reason else Delivery.Status.RECEIVED,
                ignored_reason=reason,
                next_attempt_at=None if reason else timezone.now() + SWEEP_AFTER,
            )
        )
    except IntegrityError:
        if Delivery.objects.filter(endpoint_id=endpoint.id, stripe_event_id=payload["id"]).exists():
            return Received(delivery_id=None, status="duplicate")
        raise
    if reason:
        return Received(delivery_id=delivery.id, status="ignored", reason=reason)
    transaction.on_commit(deliveries_wake)
    return Received(delivery_id=delivery.id, status="queued")


def _insert(delivery: Delivery) -> Delivery:
    """One INSERT, committed on its own (no BEGIN/COMMIT round trips): a duplicate fails on the unique
    constraint and leaves nothing behind. Inside a caller's transaction a savepoint keeps it usable."""
    if transaction.get_connection().in_atomic_block:
        with transaction.atomic():
            delivery.save(force_insert=True)
    else:
        delivery.save(force_insert=True)
    return delivery


def deliveries_wake() -> bool:
    """Wake a worker to drain received deliveries (one pending wake-up, however many arrive)."""
    from .tasks import drain_deliveries

    return wake(drain_deliveries, "deliveries")


# --- settings pages ------------------------------------------------------------------------------


def trigger_name_validate(name: str) -> str:
    """The event a Stripe type fires; blank means "sync the contact only"."""
    return event_name_validate(name)


def endpoint_secret_save(*, endpoint: Endpoint, secret: str) -> Endpoint:
    """Replace the signing secret (Stripe shows a new one when the old one is rolled)."""
    endpoint.signing_secret = secret_validate(secret)
    endpoint.save(update_fields=["signing_secret", "updated_at"])
    return endpoint


@transaction.atomic
def endpoint_settings_save(*, endpoint: Endpoint, settings: dict[str, tuple[bool, str]]) -> None:
    """Every type's setting at once, `{type: (enabled, trigger name)}`; one bad value saves nothing."""
    unknown = set(settings) - set(SUPPORTED_EVENTS)
    if unknown:
        raise ValidationError(f"Not a supported Stripe event type: {', '.join(sorted(unknown))}.")
    cleaned = {event_type: (bool(on), trigger_name_validate(name)) for event_type, (on, name) in settings.items()}
    for event_type, (enabled, name) in cleaned.items():
        EventSetting.objects.update_or_create(
            endpoint=endpoint,
            event_type=event_type,
            defaults={"team_id": endpoint.team_id, "enabled": enabled, "trigger_event_name": name},
        )


def endpoint_set_enabled(*, endpoint: Endpoint, enabled: bool) -> Endpoint:
    """A disabled endpoint answers 404 and stores nothing; Stripe retries for a while, then gives up."""
    endpoint.enabled = enabled
    endpoint.save(update_fields=["enabled", "updated_at"])
    return endpoint


def endpoint_delete(*, endpoint: Endpoint) -> None:
    endpoint.delete()  # its settings and deliveries go with it


# --- test events ---------------------------------------------------------------------------------


def endpoint_test_send(*, endpoint: Endpoint, event_type: str, email: str, name: str = "") -> Received:
    """Sign a sample event with the endpoint's own secret and receive it exactly as one from Stripe:
    the same signature check, delivery row and processing. Raises ValidationError when it cannot be
    sent, WebhookRejected when the receive path refuses it."""
    if not endpoint.enabled:
        raise ValidationError("This endpoint is disabled: enable it to send a test event.")
    if not endpoint.signing_secret:
        raise ValidationError("Save the signing secret first: test events are signed with it, as Stripe's are.")
    email = email.strip() or samples.TEST_EMAIL
    # A contact with this email keeps its Stripe customer id: the sample names that customer, so a
    # test never rewrites a real customer's link. A new contact gets a test id, which the first real
    # event for the email replaces.
    existing = (
        Contact.objects.filter(team_id=endpoint.team_id)
        .with_email(email)
        .exclude(stripe_customer_id="")
        .values_list("stripe_customer_id", flat=True)
        .first()
    )
    sample = samples.sample_event(event_type=event_type, email=email, name=name.strip(), customer_id=existing or "")
    body = json.dumps(sample)
    signature = stripe.WebhookSignature.generate_signature_header(body, endpoint.signing_secret)
    return delivery_receive(endpoint_uuid=endpoint.uuid, body=body.encode(), signature=signature)
