from .selectors import teams_for_user


def teams(request):
    """The signed-in user's teams, for the team switcher (one query, only when a page renders)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"user_teams": list(teams_for_user(user))}
