from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from .selectors import dashboard_for


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The dashboard: the team's counts, and what to do next on an empty team."""
    team = request.team or None
    context = {"team": team}
    if team:
        context.update(dashboard_for(team=team))
    return render(request, "home.html", context)


def healthz(request: HttpRequest) -> JsonResponse:
    """For load balancers and docker-compose: the web process is up and the database answers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})
