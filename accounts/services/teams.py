"""Teams, members and invitations. Who may do what is decided here as well as in the views' decorators
(accounts.decorators), so a script or a future API cannot skip the rules:

- owners and admins invite, and revoke invitations; only an owner invites an owner;
- owners change roles and remove anyone; admins remove plain members only;
- anyone may leave a team; a team always keeps at least one owner.

Each of these takes the team's lock first and then decides with the actor's role as it is now, read
under the lock (`_actor_reload`), never with the one the caller loaded: a request that started while
its user was an owner must not act as one after another owner demoted them.
"""

import secrets
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..models import Invitation, Membership, Team

INVITATION_DAYS = 7
Role = Membership.Role


@transaction.atomic
def team_create(*, name: str, owner: User | None = None) -> Team:
    name = name.strip()
    if not name:
        raise ValidationError("A team needs a name.")
    team = Team.objects.create(name=name)
    if owner is not None:
        Membership.objects.create(team=team, user=owner, role=Role.OWNER)
    return team


def team_get_or_create(*, name: str) -> tuple[Team, bool]:
    """The one team with this exact name, created when there is none (operators' scripts)."""
    teams = list(Team.objects.filter(name=name.strip())[:2])
    if len(teams) > 1:
        raise ValidationError(f"More than one team is named {name!r}; rename one first.")
    if teams:
        return teams[0], False
    return team_create(name=name), True


def team_tracking_set(*, team: Team, enabled: bool) -> Team:
    """Turn the open and click tracking of the team's emails on or off, from the next email queued (one already
    queued keeps what it was rendered with)."""
    Team.objects.filter(pk=team.pk).update(email_tracking=enabled)
    team.email_tracking = enabled
    return team


def membership_add(*, team: Team, user: User, role: str = Role.MEMBER) -> Membership:
    """`user` in `team`; an existing membership keeps its role."""
    membership, _ = Membership.objects.get_or_create(team=team, user=user, defaults={"role": role})
    return membership


@transaction.atomic
def user_signup(*, username: str, email: str, password: str, team_name: str):
    """A new user and their first team, which they own. All or nothing."""
    user = get_user_model().objects.create_user(username=username, email=email, password=password)
    team = team_create(name=team_name, owner=user)
    return user, team


# --- members -------------------------------------------------------------------------------------


def _lock_team(team_id: int) -> None:
    """Serialise changes to a team's members, so two owners demoting each other at once cannot
    leave the team with none (PostgreSQL row lock; SQLite's IMMEDIATE transactions already serialise)."""
    Team.objects.select_for_update().filter(pk=team_id).first()


def _role_reload(membership: Membership) -> bool:
    """Re-read the role under the team's lock; False when the membership is gone."""
    role = Membership.objects.filter(pk=membership.pk).values_list("role", flat=True).first()
    if role is None:
        return False
    membership.role = role
    return True


def _actor_reload(actor: Membership | None, *, team_id: int) -> Membership:
    """`actor`'s membership of `team_id` as it is now, under the team's lock; PermissionDenied when
    they are not (or no longer) in that team."""
    if actor is None or actor.team_id != team_id or not _role_reload(actor):
        raise PermissionDenied("You are not a member of this team any more.")
    return actor


def _the_last_owner(membership: Membership) -> bool:
    return (
        membership.role == Role.OWNER
        and not Membership.objects.filter(team_id=membership.team_id, role=Role.OWNER)
        .exclude(pk=membership.pk)
        .exists()
    )


def _display(membership: Membership) -> str:
    return membership.user.get_full_name() or membership.user.get_username()


def membership_can_remove(*, actor: Membership, membership: Membership) -> bool:
    """Owners remove anyone, admins plain members, and everyone themselves (leaving)."""
    if actor.pk == membership.pk:
        return True
    if actor.is_owner:
        return True
    return actor.role == Role.ADMIN and membership.role == Role.MEMBER


@transaction.atomic
def membership_remove(*, membership: Membership, actor: Membership) -> None:
    """Take `membership` out of its team, as `actor` (a membership of the same team)."""
    _lock_team(membership.team_id)
    if not _role_reload(membership):
        return  # removed by someone else meanwhile: the outcome asked for
    actor = _actor_reload(actor, team_id=membership.team_id)
    if not membership_can_remove(actor=actor, membership=membership):
        raise PermissionDenied("Only owners can remove owners and admins; admins can remove members.")
    if _the_last_owner(membership):
        raise ValidationError(
            f"{_display(membership)} is the only owner of {membership.team.name}: make someone else an owner first."
        )
    membership.delete()


@transaction.atomic
def membership_role_set(*, membership: Membership, role: str, actor: Membership) -> Membership:
    """Change `membership`'s role, as `actor`, who must be an owner of the same team."""
    if role not in Role.values:
        raise ValidationError(f"{role!r} is not a role: choose owner, admin or member.")
    _lock_team(membership.team_id)
    if not _actor_reload(actor, team_id=membership.team_id).is_owner:
        raise PermissionDenied("Only owners can change roles.")
    if not _role_reload(membership):
        raise ValidationError(f"{_display(membership)} is not a member of {membership.team.name} any more.")
    if role != Role.OWNER and _the_last_owner(membership):
        raise ValidationError(
            f"{_display(membership)} is the only owner of {membership.team.name}: make someone else an owner first."
        )
    Membership.objects.filter(pk=membership.pk).update(role=role)
    membership.role = role
    return membership


# --- invitations ---------------------------------------------------------------------------------


def _expired_before():
    return timezone.now() - timedelta(days=INVITATION_DAYS)


def invitations_open(*, team: Team):
    """The team's invitations that can still be accepted, newest first."""
    return team.invitations.filter(accepted_at__isnull=True, created_at__gte=_expired_before()).select_related(
        "invited_by"
    )


def invitation_roles_for(actor: Membership | None) -> list[tuple[str, str]]:
    """The roles `actor` may invite with: owners any, admins members and admins, members none."""
    if actor is None or not actor.is_admin:
        return []
    return [(value, label) for value, label in Role.choices if actor.is_owner or value != Role.OWNER]


def _invitation_insert(*, team: Team, email: str, role: str, actor: Membership | None, invited_by: User) -> Invitation:
    if role not in dict(invitation_roles_for(actor)):
        raise PermissionDenied(
            "Only owners can invite owners." if actor and actor.is_admin else "Only owners and admins can invite."
        )
    if email.lower() == (invited_by.email or "").strip().lower():
        raise ValidationError("That is your own email address: you are in this team already.")
    if team.memberships.filter(user__email__iexact=email).exists():
        raise ValidationError(f"{email} is a member of {team.name} already.")
    pending = invitations_open(team=team).filter(email__iexact=email).first()
    if pending is not None:
        raise ValidationError(
            f"{pending.email} was invited already, on {pending.created_at:%b} {pending.created_at.day}: "
            "revoke that invitation first to send a new one."
        )
    limit = settings.INVITATIONS_OPEN_MAX
    if invitations_open(team=team).count() >= limit:
        raise ValidationError(f"A team has at most {limit} open invitations (INVITATIONS_OPEN_MAX): revoke some first.")
    # An expired invitation to the same address is dead: it makes way for the new one.
    team.invitations.filter(accepted_at__isnull=True, email__iexact=email).delete()
    return Invitation.objects.create(
        team=team, email=email, role=role, token=secrets.token_urlsafe(32), invited_by=invited_by
    )


def invitation_create(
    *, team: Team, email: str, invited_by: User, accept_url: Callable[[str], str], role: str = Role.MEMBER
) -> Invitation:
    """An invitation to `team`, for `email` only, emailed with a link built by `accept_url(token)`.
    Decided under the team's lock, with the inviter's role as it is then; mailed outside that transaction."""
    email = email.strip()
    try:
        with transaction.atomic():
            _lock_team(team.pk)
            actor = Membership.objects.filter(team=team, user=invited_by).first()
            invitation = _invitation_insert(team=team, email=email, role=role, actor=actor, invited_by=invited_by)
    except IntegrityError as exc:  # the same address invited at the same moment by someone else
        raise ValidationError(f"{email} was invited already: revoke that invitation first.") from exc
    inviter = invited_by.get_full_name() or invited_by.get_username()
    role_text = "" if role == Role.MEMBER else f" as {Role(role).label.lower()}"
    send_mail(
        subject=f"{inviter} invited you to {team.name} on LoopSync",
        message=(
            f"{inviter} invited you to join {team.name} on LoopSync{role_text}.\n\n"
            f"Accept the invitation (within {INVITATION_DAYS} days) with an account for {email}:\n"
            f"{accept_url(invitation.token)}\n"
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[invitation.email],
    )
    return invitation


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor: Membership) -> None:
    """The link stops working at once, as `actor`, an owner or admin of the invitation's team. Only open
    invitations are revoked; an accepted one is history."""
    _lock_team(invitation.team_id)
    if not _actor_reload(actor, team_id=invitation.team_id).is_admin:
        raise PermissionDenied("Only owners and admins can revoke invitations.")
    Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True).delete()


def invitation_for(token: str) -> Invitation | None:
    """The open invitation with this token, or None when unknown, used, revoked or expired."""
    return (
        Invitation.objects.select_related("team")
        .filter(token=token, accepted_at__isnull=True, created_at__gte=_expired_before())
        .first()
    )


def invitation_email_matches(*, invitation: Invitation, user: User) -> bool:
    return bool(user.email) and user.email.strip().lower() == invitation.email.strip().lower()


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user: User) -> Membership:
    """`user` joins the invitation's team with its role. Only the account with the invited email may."""
    if not invitation_email_matches(invitation=invitation, user=user):
        raise ValidationError(
            f"This invitation is for {invitation.email}, and you are logged in as "
            f"{user.email or user.get_username()}. Log out, then log in or sign up with {invitation.email}."
        )
    claimed = Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True).update(
        accepted_at=timezone.now(), accepted_by=user
    )
    if claimed != 1:
        raise ValidationError("This invitation was used already.")
    return membership_add(team=invitation.team, user=user, role=invitation.role)


@transaction.atomic
def user_signup_invited(*, invitation: Invitation, username: str, password: str):
    """A new account for the invited email, in the inviting team with the invitation's role, and no
    team of its own. All or nothing: a used invitation creates no account."""
    user = get_user_model().objects.create_user(username=username, email=invitation.email, password=password)
    membership = invitation_accept(invitation=invitation, user=user)
    return user, membership
