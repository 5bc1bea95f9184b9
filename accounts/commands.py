"""What management commands share: finding the team an operator names."""

from django.core.management.base import CommandError

from loopsync.ids import parse_id

from .models import Team


def team_lookup(value: str) -> Team:
    """The team with this name, or failing that with this id. A name several teams share is an error."""
    value = value.strip()
    teams = list(Team.objects.filter(name=value).order_by("id"))
    if len(teams) > 1:
        ids = ", ".join(str(t.pk) for t in teams)
        raise CommandError(f"{len(teams)} teams are named {value!r} (ids {ids}): pass --team with the id instead.")
    if teams:
        return teams[0]
    if parse_id(value):
        team = Team.objects.filter(pk=parse_id(value)).first()
        if team:
            return team
    raise CommandError(f"No team is named {value!r} or has that id.")
