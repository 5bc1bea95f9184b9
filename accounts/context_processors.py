from .decorators import current_membership
from .selectors import teams_for_user


def teams(request):
    """The signed-in user's teams, for the team switcher (one query, only when a page renders), and
    the current role: `is_team_admin` (owner or admin) and `is_team_owner` hide what a member cannot do."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    membership = current_membership(request)
    return {
        "user_teams": list(teams_for_user(user)),
        "current_membership": membership,
        "is_team_admin": bool(membership and membership.is_admin),
        "is_team_owner": bool(membership and membership.is_owner),
    }
