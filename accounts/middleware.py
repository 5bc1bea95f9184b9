from django.utils.functional import SimpleLazyObject

from .selectors import teams_for_user

SESSION_KEY = "current_team_id"


def _current_team(request):
    """The team chosen in the session if the user still belongs to it, else their first team."""
    teams = teams_for_user(request.user)
    chosen = request.session.get(SESSION_KEY)
    if chosen is not None:
        team = teams.filter(pk=chosen).first()
        if team is not None:
            return team
    return teams.first()


class CurrentTeamMiddleware:
    """Sets `request.team`, lazily: requests that never look (webhooks) cost no query."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.team = SimpleLazyObject(lambda: _current_team(request))
        return self.get_response(request)
