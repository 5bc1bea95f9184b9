"""An endpoint's health: when it last received a delivery, and the requests it refused (counted by the hour and
kind in `Rejection`, with the last reason, never a body), for the panel on its page. The usual setup mistake, a
signing secret that is not Stripe's, shows as every recent request failing the signature."""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import DatabaseError, connection, transaction
from django.db.models import Max, Sum
from django.utils import timezone

from ..models import Delivery, Endpoint, Rejection

logger = logging.getLogger(__name__)
WINDOW = timedelta(hours=24)


def rejection_kind(message: str) -> str:
    if "timestamp outside the tolerance zone" in message.lower():
        return Rejection.Kind.STALE
    if "signature" in message.lower():
        return Rejection.Kind.SIGNATURE
    return Rejection.Kind.BODY


def rejection_record(*, endpoint_id: int, message: str) -> None:
    """Count one refused request (one statement: an upsert of its hour's row). A failure to count is logged and
    never changes the answer the request gets."""
    now = timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    table = connection.ops.quote_name(Rejection._meta.db_table)
    sql = (
        f"INSERT INTO {table} (endpoint_id, hour, kind, count, last_at, last_reason) "  # noqa: S608 - the model's
        "VALUES (%s, %s, %s, 1, %s, %s) ON CONFLICT (endpoint_id, hour, kind) DO UPDATE SET "
        f"count = {table}.count + 1, last_at = excluded.last_at, last_reason = excluded.last_reason"
    )
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [endpoint_id, hour, rejection_kind(message), now, message[:300]])
    except DatabaseError as exc:
        logger.warning("A refused webhook for endpoint %s was not counted: %s", endpoint_id, type(exc).__name__)


@dataclass(frozen=True)
class Health:
    last_delivery_at: datetime | None
    last_failure_at: datetime | None  # the last refused request's
    last_failure_reason: str
    refused: dict[str, int]  # kind's label → count, over WINDOW
    deliveries_in_window: int
    secret_mismatch: bool  # every request since the endpoint last changed (in WINDOW) failed the signature
    no_secret: bool  # none saved yet: every request is refused


def endpoint_health(*, endpoint: Endpoint) -> Health:
    since = timezone.now() - WINDOW
    last_delivery = Delivery.objects.filter(endpoint=endpoint).aggregate(at=Max("received_at"))["at"]
    recent = Rejection.objects.filter(endpoint=endpoint, hour__gte=since - timedelta(hours=1))
    counts = {row["kind"]: row["n"] for row in recent.values("kind").annotate(n=Sum("count")).order_by("kind")}
    last = Rejection.objects.filter(endpoint=endpoint).order_by("-last_at").first()
    deliveries = Delivery.objects.filter(endpoint=endpoint, received_at__gte=since).count() if counts else 0
    # Since the endpoint last changed (a new secret is saved, say): what the banner judges by
    changed = max(since, endpoint.updated_at) if endpoint.updated_at else since
    signature = recent.filter(kind=Rejection.Kind.SIGNATURE, last_at__gte=changed).exists() if counts else False
    # A stale request matched the secret (Stripe's library checks the signature before the time): like a delivery,
    # it shows the secret is Stripe's. Its time is what is wrong (a replay, or a clock off), not the secret.
    matched_since = (
        recent.filter(kind=Rejection.Kind.STALE, last_at__gte=changed).exists()
        or Delivery.objects.filter(endpoint=endpoint, received_at__gte=changed).exists()
        if signature
        else True
    )
    return Health(
        last_delivery_at=last_delivery,
        last_failure_at=last.last_at if last else None,
        last_failure_reason=last.last_reason if last else "",
        refused={Rejection.Kind(kind).label: n for kind, n in counts.items()},
        deliveries_in_window=deliveries,
        secret_mismatch=bool(endpoint.signing_secret) and signature and not matched_since,
        no_secret=not endpoint.signing_secret,
    )
