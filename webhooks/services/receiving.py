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
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, cast
from uuid import UUID

import psycopg
import stripe
from cachetools import TTLCache
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connection, connections, transaction
from django.db.models import CharField, DateTimeField, Field, JSONField
from django.utils import timezone

from loopsync import jsonsafe, work

from ..models import Delivery, Endpoint, EventSetting, IgnoredReason
from ..stripe_events import SUPPORTED_EVENTS, StripeEventType
from .health import rejection_record

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
        self.endpoint_id: int | None = None  # the endpoint that refused it, once known


@dataclass(frozen=True)
class Received:
    delivery_id: int | None
    status: str  # "queued", "ignored" or "duplicate"
    reason: str = ""


@dataclass(frozen=True)
class ReceivingEndpoint:
    """What the receive path needs of an endpoint: its row and the event types it takes."""

    id: int
    team_id: int
    signing_secret: str
    tolerance: int
    mode: str
    types: frozenset[str]

    @property
    def livemode(self) -> bool:
        return self.mode == Endpoint.Mode.LIVE

    def takes(self, event_type: str) -> bool:
        return event_type in self.types


def _endpoint_load(endpoint_uuid: UUID) -> ReceivingEndpoint | None:
    row = (
        Endpoint.objects.filter(uuid=endpoint_uuid, enabled=True, platform=Endpoint.Platform.STRIPE)
        .values_list("id", "team_id", "signing_secret", "tolerance", "mode")
        .first()
    )
    if row is None:
        return None
    types = EventSetting.objects.filter(endpoint_id=row[0], enabled=True).values_list("event_type", flat=True)
    return ReceivingEndpoint(*row, types=frozenset(types))


# This process's endpoints by UUID (None: unknown or disabled), for ENDPOINT_CACHE_SECONDS each.
_endpoints: TTLCache[UUID, ReceivingEndpoint | None] = TTLCache(
    maxsize=settings.ENDPOINT_CACHE_SIZE, ttl=settings.ENDPOINT_CACHE_SECONDS
)
_endpoints_lock = threading.Lock()  # TTLCache is not thread-safe (gunicorn's gthread workers)
_endpoints_generation = 0  # counts clears: a load that a clear overtook is answered but not remembered


def endpoint_for_receive(*, endpoint_uuid: UUID) -> ReceivingEndpoint:
    """The enabled endpoint with this UUID, or a 404, from this process's cache: the database is asked at most
    once per endpoint per ENDPOINT_CACHE_SECONDS, so a disabled or deleted endpoint, a new secret or a type
    setting takes effect in every web process within that time (at once in the process that saved it:
    `endpoints_forget`). An unknown UUID is remembered too, so a flood of them costs the database no more than
    one endpoint does."""
    with _endpoints_lock:
        cached = _endpoints.get(endpoint_uuid, _UNCACHED)
        generation = _endpoints_generation
    if cached is _UNCACHED:
        endpoint = _endpoint_load(endpoint_uuid)
        with _endpoints_lock:
            if generation == _endpoints_generation:
                _endpoints[endpoint_uuid] = endpoint
    else:
        endpoint = cast(ReceivingEndpoint | None, cached)
    if endpoint is None:
        raise WebhookRejected(404, "Unknown or disabled endpoint.")
    return endpoint


_UNCACHED = object()


def _endpoints_clear() -> None:
    global _endpoints_generation
    with _endpoints_lock:
        _endpoints.clear()
        _endpoints_generation += 1


def endpoints_forget() -> None:
    """Drop this process's cached endpoints, now and once the current transaction commits (what it wrote is
    then what the next webhook reads)."""
    _endpoints_clear()
    transaction.on_commit(_endpoints_clear)


# --- what a stored delivery must be ---------------------------------------------------------------


@cache
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


def delivery_receive(*, endpoint_uuid: UUID, body: bytes, signature: str | None, sample: bool = False) -> Received:
    """Verify, store and wake a worker for one Stripe webhook. Raises WebhookRejected (nothing stored).

    Nothing of the body is read before the signature holds. `sample` is for this app's own "Send test
    event" (see services.endpoint_test_send): a test-mode event that a live endpoint accepts too; it is
    verified like any other.
    """
    endpoint = endpoint_for_receive(endpoint_uuid=endpoint_uuid)
    try:
        return _verified_store(endpoint, body, signature, sample)
    except WebhookRejected as exc:
        exc.endpoint_id = endpoint.id  # counted for the endpoint's health (webhook_answer)
        raise


def _verified_store(endpoint: ReceivingEndpoint, body: bytes, signature: str | None, sample: bool) -> Received:
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
    try:
        payload = jsonsafe.loads(text)
    except jsonsafe.UnsafeJSON as exc:
        raise WebhookRejected(400, str(exc)) from None
    problem = envelope_problem(payload)
    if problem:
        raise WebhookRejected(400, problem)
    return _store(endpoint, payload, sample=sample, text=text)


def delivery_receive_fetched(*, endpoint_uuid: UUID, payload: dict) -> Received:
    """Store an event that this app fetched from Stripe's API with the endpoint's key (a catch-up): it needs
    no signature, as it came from Stripe over TLS, and it takes the rest of the webhook's path, the
    envelope's checks and the dedupe by event id included. Raises WebhookRejected as a webhook would."""
    endpoint = endpoint_for_receive(endpoint_uuid=endpoint_uuid)
    problem = envelope_problem(payload)
    if problem:
        raise WebhookRejected(400, problem)
    # In a worker, whose prefork child may exit (os._exit) before a gathered wake-up is sent: at once.
    return _store(endpoint, payload, sample=False, wake_on_commit=work.wake_on_commit)


def _store(
    endpoint: ReceivingEndpoint,
    payload: dict,
    *,
    sample: bool,
    text: str | None = None,
    wake_on_commit: Callable[[str], None] = work.wake_soon_on_commit,
) -> Received:
    """`text`: the body `payload` was parsed from, stored as it is (the database parses it, the same JSON).
    `wake_on_commit`: how the drain is woken; by default this web process's coalesced wake-ups."""
    event_type = payload["type"]
    reason = ignored_reason(
        spec=SUPPORTED_EVENTS.get(event_type),
        type_enabled=endpoint.takes(event_type),
        payload=payload,
        endpoint_livemode=endpoint.livemode,
        sample=sample,
    )
    now = timezone.now()
    delivery_id = _insert(
        {
            "team_id": endpoint.team_id,
            "endpoint_id": endpoint.id,
            "stripe_event_id": payload["id"],
            "event_type": event_type,
            "livemode": payload.get("livemode") is True,
            "sample": sample,
            "api_version": payload.get("api_version") or "",
            "account": payload.get("account") or "",
            "event_created": _created(payload),
            # The body it was parsed from, when there is one: the database parses it into the same JSON.
            "payload": text if text is not None else payload,
            "status": Delivery.Status.IGNORED if reason else Delivery.Status.RECEIVED,
            "ignored_reason": reason,
            "received_at": now,
            "next_attempt_at": None if reason else now + SWEEP_AFTER,
        }
    )
    if delivery_id is None:
        return Received(delivery_id=None, status="duplicate")
    if reason:
        return Received(delivery_id=delivery_id, status="ignored", reason=reason)
    wake_on_commit(work.DRAIN_DELIVERIES)
    return Received(delivery_id=delivery_id, status="queued")


@dataclass(frozen=True)
class _Column:
    field: Field
    prepare: bool  # a value Django must convert for the database (a time, JSON); the rest go as they are


@cache
def _insert_statement(vendor: str) -> tuple[list[_Column], str]:
    """The delivery's columns and the INSERT, built once per process (and database vendor)."""
    meta = Delivery._meta
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    sql = (
        f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({', '.join(work.column(f) for f in fields)}) "  # noqa: S608 - model names
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT (endpoint_id, stripe_event_id) DO NOTHING RETURNING {work.column(meta.pk)}"
    )
    # psycopg adapts Python's aware datetimes itself; other databases take Django's conversion.
    converted = JSONField if vendor == "postgresql" else DateTimeField | JSONField
    return [_Column(field, isinstance(field, converted)) for field in fields], sql


def _insert(values: dict[str, Any]) -> int | None:
    """One statement, `INSERT … ON CONFLICT (endpoint_id, stripe_event_id) DO NOTHING RETURNING id`, committed
    on its own (no BEGIN/COMMIT round trips), from `values` by field attname (a field left out takes its
    default; a str for the JSON payload is stored as the JSON text it is). A duplicate (Stripe's retry, or two
    requests at once) inserts nothing and returns None, with no error: nothing in the database's log carries
    the customer's payload, and a caller's transaction stays usable. Any other constraint a delivery broke
    would still be an error."""
    columns, sql = _insert_statement(connection.vendor)
    params = []
    for column in columns:
        field = column.field
        value = values[field.attname] if field.attname in values else field.get_default()
        if column.prepare and not (field.name == "payload" and isinstance(value, str)):
            value = field.get_db_prep_save(value, connection)
        params.append(value)
    if connection.vendor == "postgresql":
        row = _execute_server_bound(sql, params)
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
    return row[0] if row else None


def _execute_server_bound(sql: str, params: list[Any]) -> tuple[Any, ...] | None:
    """On PostgreSQL, through a psycopg cursor that binds on the server: the parameters travel apart from the
    statement, so the payload is not quoted into it (Django's own cursors bind on the client). Wrapped as
    Django wraps its cursors: errors are Django's, a broken transaction is refused, and the query is logged
    where queries are (CaptureQueriesContext, DEBUG). Not a prepared statement: Django turns psycopg's
    preparing off (prepare_threshold) so that connection poolers work."""
    wrapper = connections[DEFAULT_DB_ALIAS]  # once, not through the `connection` proxy at every use
    wrapper.ensure_connection()
    raw = cast(Any, psycopg.Cursor(wrapper.connection))  # the stubs name Django's wrapper; Django passes the raw one
    with wrapper.make_debug_cursor(raw) if wrapper.queries_logged else wrapper.make_cursor(raw) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


# --- the answer to one POST, for the view and the WSGI fast path (webhooks/wsgi.py) -----------------------


def webhook_body(*, read: Callable[[int], bytes], declared_length: str | None) -> bytes:
    """The request's body, read up to settings.WEBHOOK_MAX_BODY_BYTES. Raises WebhookRejected(413) past it."""
    limit = settings.WEBHOOK_MAX_BODY_BYTES
    try:
        declared = int(declared_length or 0)
    except ValueError:
        declared = 0
    body = b"" if declared > limit else read(limit + 1)
    if declared > limit or len(body) > limit:
        raise WebhookRejected(413, f"The body is larger than {limit} bytes.")
    return body


def webhook_answer(
    *, endpoint_uuid: UUID, read: Callable[[int], bytes], declared_length: str | None, signature: str | None
) -> tuple[int, dict[str, str]]:
    """The HTTP status and JSON answer to one webhook POST; never raises for what a request holds.

    A database error on a connection kept from an earlier request (the server restarted) is tried once more on a
    new connection; a database that is still away is a 503, which Stripe retries."""
    kept = connection.connection is not None  # opened by an earlier request: it may have died since
    try:
        body = webhook_body(read=read, declared_length=declared_length)
        try:
            received = delivery_receive(endpoint_uuid=endpoint_uuid, body=body, signature=signature)
        except (OperationalError, InterfaceError):
            if connection.in_atomic_block or not kept:
                raise
            connection.close()
            received = delivery_receive(endpoint_uuid=endpoint_uuid, body=body, signature=signature)
    except WebhookRejected as exc:
        # For the operator: why Stripe (or someone else) was refused. The message names the problem, never the
        # secret, and quotes nothing of the body but a field's name.
        logger.info("Webhook for endpoint %s refused (%s): %s", endpoint_uuid, exc.status, exc.message)
        if exc.endpoint_id is not None and exc.status == 400:
            rejection_record(endpoint_id=exc.endpoint_id, message=exc.message)
        return exc.status, {"error": exc.message}
    except (OperationalError, InterfaceError) as exc:
        logger.warning("Webhook for endpoint %s not stored, the database is unavailable: %s", endpoint_uuid, exc)
        if not connection.in_atomic_block:
            connection.close()
        return 503, {"error": "The database is unavailable; the webhook was not stored. Retry later."}
    answer = {"status": received.status}
    if received.reason:
        answer["reason"] = received.reason
    return 200, answer
