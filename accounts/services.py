from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from .models import Membership, Team


@transaction.atomic
def team_create(*, name: str, owner: AbstractBaseUser | None = None) -> Team:
    name = name.strip()
    if not name:
        raise ValidationError("A team needs a name.")
    team = Team.objects.create(name=name)
    if owner is not None:
        Membership.objects.create(team=team, user=owner, role=Membership.Role.OWNER)
    return team


def team_get_or_create(*, name: str) -> tuple[Team, bool]:
    """The one team with this exact name, created when there is none (operators' scripts)."""
    teams = list(Team.objects.filter(name=name.strip())[:2])
    if len(teams) > 1:
        raise ValidationError(f"More than one team is named {name!r}; rename one first.")
    if teams:
        return teams[0], False
    return team_create(name=name), True


def membership_add(*, team: Team, user: AbstractBaseUser, role: str = Membership.Role.MEMBER) -> Membership:
    membership, _ = Membership.objects.get_or_create(team=team, user=user, defaults={"role": role})
    return membership
