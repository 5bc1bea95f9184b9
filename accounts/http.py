"""Request types for views, as django-stubs suggests for attributes that middleware adds: a subclass of
HttpRequest that only annotates them. Nothing creates these; they are for annotations (`request: TeamRequest`).

`team` and `membership` are set by accounts.middleware.CurrentTeamMiddleware as lazy objects, and for a
visitor or a user without a team they wrap None: a lazy None is not `None`, so test them by truth
(`if request.team`, `request.team or None`), never with `is None`.
"""

from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest

from .models import Membership, Team


class TeamRequest(HttpRequest):
    """Any request after CurrentTeamMiddleware (LoopSync uses Django's own User model)."""

    user: User | AnonymousUser
    team: Team | None
    membership: Membership | None


class AuthenticatedTeamRequest(TeamRequest):
    """A request that passed login_required (or a team_*_required decorator): the user is signed in."""

    user: User
