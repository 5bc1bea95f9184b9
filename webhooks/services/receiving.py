"""Receiving a Stripe webhook: verify it, store it, answer at once; a worker does the rest.

Every answer is decided here, and none is a 500:
- 404: no enabled endpoint has this UUID;
- 400, nothing stored: no or a wrong signature, a stale one, or a signed body that is not a Stripe event we
  can keep (not UTF-8 or JSON, nested too deep, a null character, a number out of range, an id, type,
  api_version or account of the wrong type or longer than its column, a `created` that is not a time);
- 200, stored once: a duplicate is answered 200 and stored nothing more (the unique key);
- 200, stored as ignored with its reason: the other Stripe mode's event, a type we do not support or the
  endpoint does not take, neither an email nor a Stripe customer, or an invalid email.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import stripe
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection
from django.db.models import CharField, Exists, OuterRef
from django.utils import timezone

from loopsync import jsonsafe, work

from ..models import Delivery, Endpoint, EventSetting, IgnoredReason
from ..stripe_events import SUPPORTED_EVENTS, StripeEventType

logger = logging.getLogger(__name__)

# A row left in `received` this long is woken again by the sweeper (the broker was down, the
# wake-up was lost).
SWEEP_AFTER = timedelta(minutes=1)
# The latest second a `created` can name (the end of year 9999, where datetime ends).
CREATED_MAX = 253_402_300_799
EMAIL_MAX = 254


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
    mode: str
    type_enabled: bool

    @property
    def livemode(self) -> bool:
        return self.mode == Endpoint.Mode.LIVE


def endpoint_for_receive(*, endpoint_uuid: UUID, event_type: str) -> ReceivingEndpoint:
    """The enabled endpoint with this UUID, and whether it accepts `event_type`, or a 404."""
    enabled = EventSetting.objects.filter(endpoint=OuterRef("pk"), event_type=event_type, enabled=True)
    row = (
        Endpoint.objects.filter(uuid=endpoint_uuid, enabled=True, platform=Endpoint.Platform.STRIPE)
        .annotate(type_enabled=Exists(enabled))
        .values_list("id", "team_id", "signing_secret", "tolerance", "mode", "type_enabled")
        .first()
    )
    if row is None:
        raise WebhookRejected(404, "Unknown or disabled endpoint.")
    return ReceivingEndpoint(*row)


# --- what a stored delivery must be ---------------------------------------------------------------


def _max_length(field: str) -> int:
    char_field = Delivery._meta.get_field(field)
    if not isinstance(char_field, CharField) or char_field.max_length is None:
        raise TypeError(f"Delivery.{field} is not a CharField with a max_length")
    return char_field.max_length


def _text_problem(payload: dict, key: str, field: str, *, required: bool) -> str:
    value = payload.get(key)
    if value is None and not required:
        return ""
    limit = _max_length(field)
    if not isinstance(value, str) or (required and not value) or len(value) > limit:
        need = "1 to" if required else "at most"
        return f"The event's {key} must be text of {need} {limit} characters."
    return ""


def envelope_problem(payload: Any) -> str:
    """Why a verified body is not a Stripe event we can store, or "" when it is one."""
    if not isinstance(payload, dict):
        return "The body is not a Stripe event: it needs an id and a type."
    for key, field, required in (
        ("id", "stripe_event_id", True),
        ("type", "event_type", True),
        ("api_version", "api_version", False),
        ("account", "account", False),
    ):
        found = _text_problem(payload, key, field, required=required)
        if found:
            return found
    if payload.get("livemode") is not None and not isinstance(payload.get("livemode"), bool):
        return "The event's livemode must be true or false."
    created = payload.get("created")
    if created is not None and not (
        isinstance(created, int) and not isinstance(created, bool) and 0 <= created <= CREATED_MAX
    ):
        return "The event's created must be a Unix time in seconds."
    return ""


def _created(payload: dict) -> datetime | None:
    created = payload.get("created")
    return datetime.fromtimestamp(created, tz=UTC) if isinstance(created, int) else None


def email_valid(email: str) -> bool:
    if len(email) > EMAIL_MAX:
        return False
    try:
        validate_email(email)
    except ValidationError:
        return False
    return True


def ignored_reason(
    *, spec: StripeEventType | None, type_enabled: bool, payload: dict, endpoint_livemode: bool, sample: bool
) -> str:
    """Why this delivery is kept but not processed ("" when it is processed). The mode comes first: an
    event of Stripe's other mode says the endpoint is pasted into the wrong place, whatever its type."""
    livemode = payload.get("livemode") is True
    if livemode != endpoint_livemode and not sample:
        return IgnoredReason.TEST_ON_LIVE if endpoint_livemode else IgnoredReason.LIVE_ON_TEST
    if spec is None:
        return IgnoredReason.UNSUPPORTED
    if not type_enabled:
        return IgnoredReason.DISABLED
    email = spec.email(payload)
    if not email:  # found by its Stripe customer when processed, or ignored then as "customer unknown"
        return "" if spec.customer(payload) else IgnoredReason.NO_EMAIL
    if not email_valid(email):
        return IgnoredReason.INVALID_EMAIL
    return ""


# --- receiving ------------------------------------------------------------------------------------


def _parse(body: bytes) -> tuple[Any, str]:
    """(payload, "") or (None, why it cannot be kept)."""
    try:
        return jsonsafe.loads(body), ""
    except jsonsafe.UnsafeJSON as exc:
        return None, str(exc)


def delivery_receive(*, endpoint_uuid: UUID, body: bytes, signature: str | None, sample: bool = False) -> Received:
    """Verify, store and wake a worker for one Stripe webhook. Raises WebhookRejected (nothing stored).

    The body is parsed before it is verified only to learn its type, so that the endpoint and the
    type's setting are read in one query; nothing is trusted or stored before the signature holds.
    `sample` is for this app's own "Send test event" (see services.endpoint_test_send): a test-mode
    event that a live endpoint accepts too; it is verified like any other.
    """
    payload, problem = _parse(body)
    event_type = payload.get("type") if isinstance(payload, dict) else None
    if not isinstance(event_type, str) or len(event_type) > _max_length("event_type"):
        event_type = ""
    endpoint = endpoint_for_receive(endpoint_uuid=endpoint_uuid, event_type=event_type)
    if not signature:
        raise WebhookRejected(400, "Missing Stripe-Signature header.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRejected(400, "The body is not UTF-8 text.") from None
    try:
        stripe.WebhookSignature.verify_header(text, signature, endpoint.signing_secret, endpoint.tolerance)
    except stripe.SignatureVerificationError as exc:
        raise WebhookRejected(400, f"Invalid signature: {exc.user_message or exc}") from None
    problem = problem or envelope_problem(payload)
    if problem:
        raise WebhookRejected(400, problem)
    return _store(endpoint, payload, sample=sample)


def delivery_receive_fetched(*, endpoint_uuid: UUID, payload: dict) -> Received:
    """Store an event that this app fetched from Stripe's API with the endpoint's key (a catch-up): it needs
    no signature, as it came from Stripe over TLS, and it takes the rest of the webhook's path, the
    envelope's checks and the dedupe by event id included. Raises WebhookRejected as a webhook would."""
    event_type = payload.get("type") if isinstance(payload, dict) else None
    if not isinstance(event_type, str) or len(event_type) > _max_length("event_type"):
        event_type = ""
    endpoint = endpoint_for_receive(endpoint_uuid=endpoint_uuid, event_type=event_type)
    problem = envelope_problem(payload)
    if problem:
        raise WebhookRejected(400, problem)
    return _store(endpoint, payload, sample=False)


def _store(endpoint: ReceivingEndpoint, payload: dict, *, sample: bool) -> Received:
    event_type = payload["type"]
    reason = ignored_reason(
        spec=SUPPORTED_EVENTS.get(event_type),
        type_enabled=endpoint.type_enabled,
        payload=payload,
        endpoint_livemode=endpoint.livemode,
        sample=sample,
    )
    delivery_id = _insert(
        Delivery(
            team_id=endpoint.team_id,
            endpoint_id=endpoint.id,
            stripe_event_id=payload["id"],
            event_type=event_type,
            livemode=payload.get("livemode") is True,
            sample=sample,
            api_version=payload.get("api_version") or "",
            account=payload.get("account") or "",
            event_created=_created(payload),
            payload=payload,
            status=Delivery.Status.IGNORED if reason else Delivery.Status.RECEIVED,
            ignored_reason=reason,
            next_attempt_at=None if reason else timezone.now() + SWEEP_AFTER,
        )
    )
    if delivery_id is None:
        return Received(delivery_id=None, status="duplicate")
    if reason:
        return Received(delivery_id=delivery_id, status="ignored", reason=reason)
    work.wake_on_commit(work.DRAIN_DELIVERIES)
    return Received(delivery_id=delivery_id, status="queued")


def _insert(delivery: Delivery) -> int | None:
    """One statement, `INSERT … ON CONFLICT (endpoint_id, stripe_event_id) DO NOTHING RETURNING id`, committed
    on its own (no BEGIN/COMMIT round trips). A duplicate (Stripe's retry, or two requests at once) inserts
    nothing and returns None, with no error: nothing in the database's log carries the customer's payload, and
    a caller's transaction stays usable. Any other constraint a delivery broke would still be an error."""
    meta = Delivery._meta
    quote = connection.ops.quote_name
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    values = [field.get_db_prep_save(field.pre_save(delivery, add=True), connection) for field in fields]
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(work.column(f) for f in fields)}) "  # noqa: S608 - model names
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT (endpoint_id, stripe_event_id) DO NOTHING RETURNING {work.column(meta.pk)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    return row[0] if row else None
