from django.db.models import QuerySet

from accounts.models import Team

from .models import Event

PAGE_SIZE = 50


def events_for_team(*, team: Team, name: str = "", contact: str = "") -> QuerySet[Event]:
    events = Event.objects.filter(team=team).select_related("contact").order_by("-created_at", "-id")
    if name:
        events = events.filter(name=name)
    if contact:
        events = events.filter(contact__email__icontains=contact.strip())
    return events


def event_names(*, team: Team) -> list[str]:
    return list(Event.objects.filter(team=team).order_by("name").values_list("name", flat=True).distinct()[:200])
