"""Reads for the webhook settings pages: a team's endpoints, their settings, and what a test event did."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from accounts.models import Team
from contacts.conditions import value_type
from contacts.models import Contact
from contacts.selectors import contact_find
from contacts.timeline import Item
from loops.models import Event, Loop, LoopRun, LoopTemplate
from loops.triggers import trigger_firing

from .models import Delivery, Endpoint, EventSetting, StripeSync
from .samples import sample_event
from .stripe_events import SUPPORTED_EVENTS, StripeEventType


def endpoints_for_team(*, team: Team | None) -> QuerySet[Endpoint]:
    if not team:
        return Endpoint.objects.none()
    return Endpoint.objects.filter(team=team).order_by("created_at", "id")


def endpoint_type_settings(*, endpoint: Endpoint) -> list[tuple[StripeEventType, EventSetting | None]]:
    """Each supported type, in the one list's order, with this endpoint's setting for it (if any)."""
    settings = {s.event_type: s for s in EventSetting.objects.filter(endpoint=endpoint, team_id=endpoint.team_id)}
    return [(spec, settings.get(spec.type)) for spec in SUPPORTED_EVENTS.values()]


def trigger_names_configured(*, team: Team, limit: int) -> list[str]:
    """The names the team's Stripe endpoints fire for their types."""
    rows = EventSetting.objects.filter(team=team).exclude(trigger_event_name="").order_by("trigger_event_name")
    return list(rows.values_list("trigger_event_name", flat=True).distinct()[:limit])


def stripe_types_firing(*, team: Team, name: str) -> list[StripeEventType]:
    """The Stripe types an enabled endpoint of the team fires `name` for."""
    types = (
        EventSetting.objects.filter(team=team, trigger_event_name=name, enabled=True, endpoint__enabled=True)
        .values_list("event_type", flat=True)
        .distinct()
    )
    return [SUPPORTED_EVENTS[event_type] for event_type in types if event_type in SUPPORTED_EVENTS]


def stripe_types_suggesting(name: str) -> list[StripeEventType]:
    """The Stripe types whose suggested trigger is `name` (a gallery loop's event)."""
    return [spec for spec in SUPPORTED_EVENTS.values() if spec.suggested_trigger == name]


# What processing adds to every Stripe event's properties (processing.fire_properties), with their types.
ADDED_PROPERTIES = {"stripe_event_id": "text", "stripe_event_type": "text", "stripe_customer_id": "text"}


@lru_cache(maxsize=256)
def stripe_event_properties(name: str) -> dict[str, str]:
    """The properties an event `name` carries when a Stripe type fires it under its suggested name, with their
    types (contacts.conditions): the type's extractor on its sample event, and what processing adds. What a
    filter on the event may name before any such event has been received."""
    types: dict[str, str] = {}
    for spec in stripe_types_suggesting(name):
        payload = sample_event(event_type=spec.type, email="sample@example.com", name="Sample Customer")
        for key, value in spec.extract(payload).properties.items():
            types.setdefault(key, value_type(value))
    return {**types, **ADDED_PROPERTIES, "livemode": "boolean"} if types else {}


def endpoint_delivery(*, endpoint: Endpoint, delivery_id: str | int | None) -> Delivery | None:
    """One of this endpoint's deliveries by id, or None for a missing or malformed id."""
    try:
        delivery_id = int(delivery_id or 0)
    except (TypeError, ValueError):
        return None
    return Delivery.objects.filter(team_id=endpoint.team_id, endpoint=endpoint, pk=delivery_id).first()


@dataclass(frozen=True)
class DeliveryOutcome:
    """What became of a test event: the delivery, and once processed, its contact, the events it fired (the
    type's, then its additional one) and the loop runs they started."""

    delivery: Delivery
    trigger: str = ""
    contact: Contact | None = None
    event: Event | None = None
    runs: list[LoopRun] = field(default_factory=list)
    additional: Event | None = None
    contact_deleted: bool = False

    @property
    def done(self) -> bool:
        return self.delivery.status in {Delivery.Status.PROCESSED, Delivery.Status.FAILED, Delivery.Status.IGNORED}

    @property
    def events(self) -> list[Event]:
        return [event for event in (self.event, self.additional) if event is not None]

    @property
    def no_event_reason(self) -> str:
        """Why a processed delivery fired nothing."""
        if not self.trigger:
            return "this type only syncs the contact (no event is set for it)."
        if self.contact_deleted:
            return "the contact was deleted, as this endpoint's options say."
        if self.delivery.event_type == "customer.subscription.updated":
            return "the plan did not change (a renewal or a status change only syncs the billing state)."
        return "nothing was fired."


def delivery_outcome(*, delivery: Delivery) -> DeliveryOutcome:
    trigger = (
        EventSetting.objects.filter(endpoint_id=delivery.endpoint_id, event_type=delivery.event_type)
        .values_list("trigger_event_name", flat=True)
        .first()
        or ""
    )
    if delivery.status != Delivery.Status.PROCESSED:
        return DeliveryOutcome(delivery=delivery, trigger=trigger)
    keys = [delivery.stripe_event_id, f"{delivery.stripe_event_id}:additional"]
    fired = {
        e.idempotency_key: e
        for e in Event.objects.filter(team_id=delivery.team_id, idempotency_key__in=keys).select_related("contact")
    }
    event, additional = fired.get(keys[0]), fired.get(keys[1])
    fired_first = event or additional
    contact: Contact | None
    if fired_first is not None:
        contact = fired_first.contact
        runs = list(
            LoopRun.objects.filter(team_id=delivery.team_id, event__in=[e for e in (event, additional) if e])
            .select_related("loop")
            .order_by("id")
        )
    else:
        spec = SUPPORTED_EVENTS.get(delivery.event_type)
        email = spec.email(delivery.payload) if spec else ""
        customer = spec.customer(delivery.payload) if spec and not email else ""
        if email:
            contact = contact_find(team=Team(id=delivery.team_id), email=email, livemode=delivery.livemode)
        elif customer:
            contact = Contact.objects.filter(
                team_id=delivery.team_id, livemode=delivery.livemode, stripe_customer_id=customer
            ).first()
        else:
            contact = None
        runs = []
    deleted = delivery.event_type == "customer.deleted" and contact is None
    return DeliveryOutcome(
        delivery=delivery,
        trigger=trigger,
        contact=contact,
        event=event,
        runs=runs,
        additional=additional,
        contact_deleted=deleted,
    )


def endpoint_syncs(*, endpoint: Endpoint) -> dict[str, StripeSync | None]:
    """The newest import and the newest catch-up of this endpoint, for its page."""
    return {kind: StripeSync.objects.filter(endpoint=endpoint, kind=kind).first() for kind in StripeSync.Kind.values}


@dataclass(frozen=True)
class CatchupStart:
    at: datetime
    why: str  # what `at` is, for the page: "the newest event this endpoint received", …


def catchup_default_since(*, endpoint: Endpoint) -> CatchupStart:
    """Where a catch-up starts when no time is given: the newest event this endpoint received from Stripe,
    else its creation, never before what Stripe still keeps (STRIPE_CATCHUP_DAYS)."""
    newest = (
        Delivery.objects.filter(endpoint=endpoint, sample=False, event_created__isnull=False)
        .order_by("-event_created")
        .values_list("event_created", flat=True)
        .first()
    )
    kept = timezone.now() - timedelta(days=settings.STRIPE_CATCHUP_DAYS)
    at, why = (newest, "the newest event this endpoint received") if newest else (
        endpoint.created_at, "when this endpoint was made (it has received no event yet)"
    )  # fmt: skip
    if at < kept:
        at, why = kept, f"{settings.STRIPE_CATCHUP_DAYS} days ago, as far back as Stripe keeps events"
    return CatchupStart(at=at, why=why)


def contact_deliveries(contact: Contact, limit: int) -> list[Item]:
    """The webhooks behind a contact's Stripe events, for its timeline (contacts.timeline)."""
    keys = list(
        Event.objects.filter(contact=contact, idempotency_key__startswith="evt_")
        .order_by("-created_at")
        .values_list("idempotency_key", flat=True)[:limit]
    )
    # By the team's endpoints, so the (endpoint, event id) key finds them: by team_id, PostgreSQL reads every
    # delivery the team ever received (no index leads with the event id)
    endpoints = Endpoint.objects.filter(team_id=contact.team_id).values("pk")
    deliveries = Delivery.objects.filter(endpoint__in=endpoints, stripe_event_id__in=keys).only(
        "pk", "event_type", "status", "ignored_reason", "received_at", "stripe_event_id"
    )
    return [
        Item(
            delivery.received_at,
            "delivery",
            f"Stripe webhook {delivery.event_type}",
            delivery.get_status_display()
            + (f" ({delivery.get_ignored_reason_display()})" if delivery.ignored_reason else ""),
            reverse("webhook-log:delivery", args=[delivery.pk]),
        )
        for delivery in deliveries
    ]


def template_triggers() -> dict[str, str]:
    """Per supported Stripe type, the event it fires in a new endpoint: its suggested name, where one of the seeded
    loop templates listens for that name (so "Stripe - Payment Failed" works as soon as it is activated)."""
    listened = {template.trigger_event_name for template in LoopTemplate.objects.all()}
    return {
        event_type: spec.suggested_trigger
        for event_type, spec in SUPPORTED_EVENTS.items()
        if spec.suggested_trigger and spec.suggested_trigger in listened
    }


def loops_unfired(*, team: Team) -> list[Loop]:
    """The team's active loops triggered by an event name that none of its endpoints fires and that was never
    received (the API may still send it): what the Stripe settings warn about."""
    loops = Loop.objects.filter(team=team, status=Loop.Status.ACTIVE, trigger=Loop.Trigger.EVENT).order_by("name")
    seen = set(
        Event.objects.filter(team=team, name__in=[loop.trigger_event_name for loop in loops])
        .values_list("name", flat=True)
        .distinct()
    )
    return [
        loop
        for loop in loops
        if loop.trigger_event_name not in seen and not trigger_firing(team=team, name=loop.trigger_event_name)
    ]


def deliveries_search(*, team: Team, endpoints: list[Endpoint], q: str, status: str, limit: int) -> list[Delivery]:
    """The newest `limit` deliveries of the team's endpoints matching `q`: a Stripe event id (evt_…), a contact's
    email (the deliveries behind its events), or an event type; and `status`. Each endpoint's newest come from
    its own index, then merge."""
    deliveries = Delivery.objects.filter(team=team).select_related("endpoint").defer("payload")
    if status in Delivery.Status.values:
        deliveries = deliveries.filter(status=status)
    if q.startswith("evt_"):
        deliveries = deliveries.filter(stripe_event_id=q.removesuffix(":additional"))
    elif "@" in q:
        contacts = Contact.objects.filter(team=team).with_email(q)
        keys = Event.objects.filter(team=team, contact__in=contacts, idempotency_key__startswith="evt_")
        ids = {key.removesuffix(":additional") for key in keys.values_list("idempotency_key", flat=True)[:1000]}
        deliveries = deliveries.filter(stripe_event_id__in=ids)
    elif q:
        deliveries = deliveries.filter(event_type=q)
    rows: list[Delivery] = []
    for endpoint in endpoints:
        rows += deliveries.filter(endpoint=endpoint).order_by("-received_at", "-id")[:limit]
    return sorted(rows, key=lambda d: (d.received_at, d.pk), reverse=True)[:limit]
