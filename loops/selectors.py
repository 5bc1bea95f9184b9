from typing import Any

from django.db.models import QuerySet

from accounts.models import Team
from contacts.models import Contact

from .models import Event, Loop
from .rendering import SAMPLE_CONTEXT, contact_context, event_context

PAGE_SIZE = 50


def events_for_team(*, team: Team, name: str = "", contact: str = "", livemode: bool = True) -> QuerySet[Event]:
    """The team's events of one mode (live, or test behind the "Test data" switch), newest first."""
    events = Event.objects.filter(team=team, livemode=livemode).select_related("contact")
    events = events.order_by("-created_at", "-id")
    # A NUL can be in no PostgreSQL text column, and psycopg refuses it in a parameter (a 500): drop it.
    name, contact = name.replace("\x00", ""), contact.replace("\x00", "")
    if name:
        events = events.filter(name=name)
    if contact:
        events = events.filter(contact__email__icontains=contact.strip())
    return events


def event_names(*, team: Team, livemode: bool = True) -> list[str]:
    events = Event.objects.filter(team=team, livemode=livemode)
    return list(events.order_by("name").values_list("name", flat=True).distinct()[:200])


def preview_context(*, loop: Loop, contact: Contact | None) -> dict[str, Any]:
    """What the editor renders an email with: the chosen contact (or a sample one) and the event that
    would start the run: the contact's latest with the loop's trigger name, else the team's latest,
    else a sample."""
    event = None
    if loop.trigger == Loop.Trigger.EVENT and loop.trigger_event_name:
        livemode = contact.livemode if contact else True  # a test contact's events are test events
        named = Event.objects.filter(team_id=loop.team_id, name=loop.trigger_event_name, livemode=livemode)
        named = named.order_by("-created_at", "-id")
        event = (named.filter(contact=contact).first() if contact else None) or named.first()
    return {
        "contact": contact_context(contact) if contact else SAMPLE_CONTEXT["contact"],
        "event": event_context(event) if event else SAMPLE_CONTEXT["event"],
    }


def preview_contacts(*, team: Team, limit: int = 20) -> list[str]:
    """Emails to offer in the preview's contact picker: the newest contacts."""
    newest = Contact.objects.live().filter(team=team).order_by("-created_at", "-id")
    return list(newest.values_list("email", flat=True)[:limit])
