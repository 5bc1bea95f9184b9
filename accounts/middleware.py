from typing import cast

from django.contrib import messages
from django.shortcuts import redirect
from django.utils.functional import SimpleLazyObject

from .http import TeamRequest
from .models import Membership, Team

SESSION_KEY = "current_team_id"


def _current_membership(request: TeamRequest) -> Membership | None:
    """The membership of the team chosen in the session if the user is still in it, else of their
    first team by name; None for a visitor or a user without a team. One query, team included."""
    if not request.user.is_authenticated:
        return None
    memberships = Membership.objects.filter(user=request.user).select_related("team")
    chosen = request.session.get(SESSION_KEY)
    if isinstance(chosen, int):
        membership = memberships.filter(team_id=chosen).first()
        if membership is not None:
            return membership
    return memberships.order_by("team__name", "team_id").first()


class CurrentTeamMiddleware:
    """Sets `request.membership` (with its role) and `request.team`, lazily: requests that never look
    (webhooks) cost no query."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: TeamRequest):
        # The lazy objects stand in for what they wrap (a Membership or Team, or None): typed as that.
        request.membership = cast(Membership | None, SimpleLazyObject(lambda: _current_membership(request)))
        request.team = cast(
            Team | None, SimpleLazyObject(lambda: request.membership.team if request.membership else None)
        )
        return self.get_response(request)


# The pages that show or change a team's data. A signed-in user who belongs to no team (they left, or were
# removed) is sent to the dashboard, which says so and offers to create a team, instead of empty pages.
TEAM_NAMESPACES = frozenset(
    {"contacts", "loops", "webhook-settings", "webhook-log", "api-settings", "sending-settings"}
)
TEAM_PAGES = frozenset({"team-members", "team-member-role", "team-member-remove", "team-invitation-revoke"})
PUBLIC_PAGES = frozenset({"loops:unsubscribe"})


class TeamRequiredMiddleware:
    """After CurrentTeamMiddleware and authentication: team pages need a team."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request: TeamRequest, view_func, view_args, view_kwargs):
        match = request.resolver_match
        if match is None or not request.user.is_authenticated or match.view_name in PUBLIC_PAGES:
            return None
        if (match.namespace in TEAM_NAMESPACES or match.url_name in TEAM_PAGES) and not request.team:
            messages.info(request, "You are not a member of any team now: create one, or ask for an invitation.")
            return redirect("home")
        return None
