"""Role checks for views, in one place. The current membership is `request.membership` (set lazily by
accounts.middleware.CurrentTeamMiddleware beside `request.team`); templates get `is_team_admin` and
`is_team_owner` from accounts.context_processors.teams.

    @team_admin_required   owner or admin: changes to endpoints, secrets, API keys, sending, members
    @team_owner_required   owner only: roles

Each also requires a logged-in user (a visitor is sent to the log-in page) and answers anyone else
with 403 (templates/403.html). Checks run before the view looks anything up, so a member of this team
gets 403 for any object id, and a user of another team still gets the view's 404 for this team's objects.
"""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from .http import TeamRequest
from .models import Membership

ADMIN_ONLY = "Only owners and admins can change this."
OWNER_ONLY = "Only owners can change this."


def current_membership(request: HttpRequest) -> Membership | None:
    """The user's membership of the current team, or None (a lazy None is unwrapped)."""
    membership: Membership | None = getattr(request, "membership", None)
    return membership if membership else None


def _requires(allowed: Callable[[Membership], bool], message: str):
    def decorator(view):
        @wraps(view)
        def wrapped(request: TeamRequest, *args, **kwargs):
            membership = current_membership(request)
            if membership is None:
                raise PermissionDenied("You are not a member of a team yet.")
            if not allowed(membership):
                raise PermissionDenied(message)
            return view(request, *args, **kwargs)

        return login_required(wrapped)

    return decorator


team_admin_required = _requires(lambda membership: membership.is_admin, ADMIN_ONLY)
team_owner_required = _requires(lambda membership: membership.is_owner, OWNER_ONLY)
