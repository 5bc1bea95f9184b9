from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone

from contacts.models import Contact
from loops.models import EmailMessage, Event, Loop
from webhooks.models import Delivery, Endpoint


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The dashboard: the team's counts, and what to do next on an empty team."""
    team = request.team or None
    context = {"team": team}
    if team:
        since = timezone.now() - timedelta(days=1)
        sent = EmailMessage.objects.filter(team=team, status=EmailMessage.Status.SENT)
        context.update(
            contacts=Contact.objects.live().filter(team=team).count(),
            # Test data, counted apart: what Stripe test-mode events and "Send test event" made.
            test_contacts=Contact.objects.filter(team=team, livemode=False).count(),
            test_emails_sent=sent.filter(contact__livemode=False).count(),
            events_today=Event.objects.filter(team=team, livemode=True, created_at__gte=since).count(),
            # Test-mode contacts' emails (to the team's own members) are not counted; transactional ones are.
            emails_sent=sent.exclude(contact__livemode=False).count(),
            deliveries_failed=Delivery.objects.filter(team=team, status=Delivery.Status.FAILED).count(),
            has_endpoint=Endpoint.objects.filter(team=team).exists(),
            has_active_loop=Loop.objects.filter(team=team, status=Loop.Status.ACTIVE).exists(),
        )
    return render(request, "home.html", context)


def healthz(request: HttpRequest) -> JsonResponse:
    """For load balancers and docker-compose: the web process is up and the database answers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})
