"""Trigger names: which names are worth offering for a loop's event, and what fires a name.

The loops app knows the events it has received and the names its loops wait for. Other apps know what
they fire: they contribute a `TriggerSource` when they start (webhooks/apps.py registers its Stripe types),
so loops offers their names without importing them, and the layers keep pointing one way."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from accounts.models import Team

from .models import Event, Loop

SUGGESTIONS_PER_SOURCE = 200


@dataclass(frozen=True)
class TriggerSource:
    """What another app fires. Each callable answers for one team; `label` names a thing that fires."""

    suggested: Callable[[], Iterable[str]]  # names always worth offering (a Stripe type's suggested name)
    configured: Callable[[Team, int], Iterable[str]]  # the team's own names, at most `limit`
    firing: Callable[[Team, str], list[str]]  # labels of what the team set up to fire `name`
    suggesting: Callable[[str], list[str]]  # labels of what could fire `name`, once set up
    # the properties an event of this name carries, with their types (contacts.conditions): what a filter on
    # the event may name before any such event was received
    properties: Callable[[str], dict[str, str]] = lambda name: {}


_sources: dict[str, TriggerSource] = {}


def trigger_source_register(*, name: str, source: TriggerSource) -> None:
    """Called from an AppConfig.ready(); registering the same name again replaces it."""
    _sources[name] = source


def trigger_name_suggestions(*, team: Team) -> list[str]:
    """Names worth offering as a trigger: the team's event names, what its loops are triggered by, and what
    the other apps fire or suggest. Offered on the Stripe settings page and in the loop editor."""
    fired = Event.objects.filter(team=team).order_by("name").values_list("name", flat=True).distinct()
    awaited = (
        Loop.objects.filter(team=team)
        .exclude(trigger_event_name="")
        .order_by("trigger_event_name")
        .values_list("trigger_event_name", flat=True)
        .distinct()
    )
    names = {*fired[:SUGGESTIONS_PER_SOURCE], *awaited[:SUGGESTIONS_PER_SOURCE]}
    for source in _sources.values():
        names.update(source.configured(team, SUGGESTIONS_PER_SOURCE))
        names.update(source.suggested())
    return sorted(names, key=str.lower)


def trigger_firing(*, team: Team, name: str) -> list[str]:
    """What the team set up to fire `name`, by label ("Payment failed"…); [] when nothing does."""
    return [label for source in _sources.values() for label in source.firing(team, name)]


def trigger_suggesting(*, name: str) -> list[str]:
    """What could fire `name` once it is set up, by label."""
    return [label for source in _sources.values() for label in source.suggesting(name)]


def trigger_properties(*, name: str) -> dict[str, str]:
    """The properties the other apps' events of this name carry, with their types."""
    found: dict[str, str] = {}
    for source in _sources.values():
        found.update(source.properties(name))
    return found
