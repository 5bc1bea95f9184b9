from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from accounts.selectors import teams_for_user
from contacts.models import Contact
from loops.models import Event
from webhooks.models import Delivery, Endpoint


@login_required
def home(request: HttpRequest) -> HttpResponse:
    team = request.team or None
    context = {"team": team, "teams": teams_for_user(request.user)}
    if team:
        context.update(
            contacts=Contact.objects.filter(team=team).count(),
            events=Event.objects.filter(team=team).count(),
            deliveries_failed=Delivery.objects.filter(team=team, status=Delivery.Status.FAILED).count(),
            endpoints=Endpoint.objects.filter(team=team).prefetch_related("event_settings"),
        )
    return render(request, "home.html", context)


def healthz(request: HttpRequest) -> JsonResponse:
    """For load balancers and docker-compose: the web process is up and the database answers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})
