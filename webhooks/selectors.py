"""Reads for the webhook settings pages: a team's endpoints, their settings, and what a test event did."""

from dataclasses import dataclass, field

from django.db.models import QuerySet

from accounts.models import Team
from contacts.models import Contact
from loops.models import Event, Loop, LoopRun

from .models import Delivery, Endpoint, EventSetting
from .stripe_events import SUPPORTED_EVENTS, StripeEventType

SUGGESTIONS_PER_SOURCE = 200


def endpoints_for_team(*, team: Team | None) -> QuerySet[Endpoint]:
    if not team:
        return Endpoint.objects.none()
    return Endpoint.objects.filter(team=team).order_by("created_at", "id")


def endpoint_type_settings(*, endpoint: Endpoint) -> list[tuple[StripeEventType, EventSetting | None]]:
    """Each supported type, in the one list's order, with this endpoint's setting for it (if any)."""
    settings = {s.event_type: s for s in EventSetting.objects.filter(endpoint=endpoint, team_id=endpoint.team_id)}
    return [(spec, settings.get(spec.type)) for spec in SUPPORTED_EVENTS.values()]


def trigger_name_suggestions(*, team: Team) -> list[str]:
    """Names worth offering as a trigger: the team's event names, what its loops are triggered by, what
    its Stripe endpoints fire, and the name suggested for each Stripe type. Offered on the Stripe
    settings page and in the loop editor."""
    fired = Event.objects.filter(team=team).order_by("name").values_list("name", flat=True).distinct()
    awaited = (
        Loop.objects.filter(team=team)
        .exclude(trigger_event_name="")
        .order_by("trigger_event_name")
        .values_list("trigger_event_name", flat=True)
        .distinct()
    )
    configured = (
        EventSetting.objects.filter(team=team)
        .exclude(trigger_event_name="")
        .order_by("trigger_event_name")
        .values_list("trigger_event_name", flat=True)
        .distinct()
    )
    names = {*fired[:SUGGESTIONS_PER_SOURCE], *awaited[:SUGGESTIONS_PER_SOURCE], *configured[:SUGGESTIONS_PER_SOURCE]}
    names |= {spec.suggested_trigger for spec in SUPPORTED_EVENTS.values() if spec.suggested_trigger}
    return sorted(names, key=str.lower)


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


def endpoint_delivery(*, endpoint: Endpoint, delivery_id: str | int | None) -> Delivery | None:
    """One of this endpoint's deliveries by id, or None for a missing or malformed id."""
    try:
        delivery_id = int(delivery_id or 0)
    except (TypeError, ValueError):
        return None
    return Delivery.objects.filter(team_id=endpoint.team_id, endpoint=endpoint, pk=delivery_id).first()


@dataclass(frozen=True)
class DeliveryOutcome:
    """What became of a test event: the delivery, and once processed, its contact, event and loop runs."""

    delivery: Delivery
    trigger: str = ""
    contact: Contact | None = None
    event: Event | None = None
    runs: list[LoopRun] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.delivery.status in {Delivery.Status.PROCESSED, Delivery.Status.FAILED, Delivery.Status.IGNORED}


def delivery_outcome(*, delivery: Delivery) -> DeliveryOutcome:
    trigger = (
        EventSetting.objects.filter(endpoint_id=delivery.endpoint_id, event_type=delivery.event_type)
        .values_list("trigger_event_name", flat=True)
        .first()
        or ""
    )
    if delivery.status != Delivery.Status.PROCESSED:
        return DeliveryOutcome(delivery=delivery, trigger=trigger)
    event = (
        Event.objects.filter(team_id=delivery.team_id, idempotency_key=delivery.stripe_event_id)
        .select_related("contact")
        .first()
    )
    if event is not None:
        contact = event.contact
        runs = list(LoopRun.objects.filter(team_id=delivery.team_id, event=event).select_related("loop").order_by("id"))
    else:
        spec = SUPPORTED_EVENTS.get(delivery.event_type)
        email = spec.email(delivery.payload) if spec else ""
        contacts = Contact.objects.filter(team_id=delivery.team_id, livemode=delivery.livemode)
        contact = contacts.with_email(email).first() if email else None
        runs = []
    return DeliveryOutcome(delivery=delivery, trigger=trigger, contact=contact, event=event, runs=runs)
