"""Loop names: unique within a team, whatever their case (the loop_team_name_uniq constraint)."""

from django.db.models.functions import Lower

from accounts.models import Team

from ..models import Loop

NAME_MAX = 120


def loop_name_free(*, team: Team, name: str, exclude_id: int | None = None) -> str:
    """`name` if no other loop of the team has it, else the first free "name (2)", "name (3)"…"""
    name = name.strip()[:NAME_MAX]
    others = Loop.objects.filter(team=team)
    if exclude_id is not None:
        others = others.exclude(pk=exclude_id)
    taken = set(
        others.annotate(lower=Lower("name"))
        .filter(lower__startswith=name.lower()[: NAME_MAX - 8])
        .values_list("lower", flat=True)
    )
    if name.lower() not in taken:
        return name
    for number in range(2, 10_000):
        suffix = f" ({number})"
        candidate = name[: NAME_MAX - len(suffix)] + suffix
        if candidate.lower() not in taken:
            return candidate
    raise ValueError("no free name")


def loop_name_taken(*, team: Team, name: str, exclude_id: int | None = None) -> bool:
    others = Loop.objects.filter(team=team, name__iexact=name.strip())
    if exclude_id is not None:
        others = others.exclude(pk=exclude_id)
    return others.exists()
