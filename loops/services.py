"""Loop use cases. Every source (Stripe, the API, the app) fires events through `event_fire`."""

from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from accounts.models import Team
from contacts.models import Contact

from .models import Event


@dataclass(frozen=True)
class FireResult:
    event: Event
    created: bool  # False: this idempotency key had fired already, nothing happened again


def event_fire(
    *,
    team: Team,
    contact: Contact,
    name: str,
    properties: dict[str, Any] | None = None,
    source: str = "",
    idempotency_key: str = "",
) -> FireResult:
    """Record that `name` happened to `contact`, once per idempotency key within the team."""
    name = name.strip()
    if not name:
        raise ValueError("event_fire needs an event name")
    if contact.team_id != team.id:
        raise ValueError("the contact belongs to another team")
    if idempotency_key:
        existing = Event.objects.filter(team=team, idempotency_key=idempotency_key).first()
        if existing is not None:
            return FireResult(event=existing, created=False)
    try:
        with transaction.atomic():
            event = Event.objects.create(
                team=team,
                contact=contact,
                name=name,
                properties=properties or {},
                source=source,
                idempotency_key=idempotency_key,
            )
    except IntegrityError:
        if not idempotency_key:
            raise
        return FireResult(event=Event.objects.get(team=team, idempotency_key=idempotency_key), created=False)
    return FireResult(event=event, created=True)
