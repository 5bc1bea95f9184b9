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


@transaction.atomic
def user_signup(*, username: str, email: str, password: str, team_name: str):
    """A new user and their first team, which they own. All or nothing."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username=username, email=email, password=password)
    team = team_create(name=team_name, owner=user)
    return user, team


INVITATION_DAYS = 7


def invitation_create(*, team: Team, email: str, invited_by, accept_url):
    """An invitation to `team`, emailed to `email` with a link built by `accept_url(token)`."""
    import secrets

    from django.conf import settings
    from django.core.mail import send_mail

    from .models import Invitation

    invitation = Invitation.objects.create(
        team=team, email=email.strip(), token=secrets.token_urlsafe(32), invited_by=invited_by
    )
    inviter = invited_by.get_full_name() or invited_by.get_username()
    send_mail(
        subject=f"{inviter} invited you to {team.name} on LoopSync",
        message=(
            f"{inviter} invited you to join {team.name} on LoopSync.\n\n"
            f"Accept the invitation (within {INVITATION_DAYS} days):\n{accept_url(invitation.token)}\n"
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[invitation.email],
    )
    return invitation


def invitation_for(token: str):
    """The open invitation with this token, or None when unknown, used or expired."""
    from datetime import timedelta

    from django.utils import timezone

    from .models import Invitation

    return (
        Invitation.objects.select_related("team")
        .filter(token=token, accepted_at__isnull=True, created_at__gte=timezone.now() - timedelta(days=INVITATION_DAYS))
        .first()
    )


@transaction.atomic
def invitation_accept(*, invitation, user) -> Membership:
    from django.utils import timezone

    from .models import Invitation

    claimed = Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True).update(
        accepted_at=timezone.now(), accepted_by=user
    )
    if claimed != 1:
        raise ValidationError("This invitation was used already.")
    return membership_add(team=invitation.team, user=user)
