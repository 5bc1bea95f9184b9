"""Reads that span the apps: the dashboard."""

from datetime import timedelta
from typing import Any

from django.utils import timezone

from accounts.models import Team
from contacts.models import Contact
from loops.models import EmailMessage, Event, Loop
from webhooks.models import Delivery, Endpoint


def dashboard_for(*, team: Team) -> dict[str, Any]:
    """The team's counts on the dashboard, and what an empty team needs to do next."""
    since = timezone.now() - timedelta(days=1)
    sent = EmailMessage.objects.filter(team=team, status=EmailMessage.Status.SENT)
    return {
        "contacts": Contact.objects.live().filter(team=team).count(),
        # Test data, counted apart: what Stripe test-mode events and "Send test event" made.
        "test_contacts": Contact.objects.filter(team=team, livemode=False).count(),
        "test_emails_sent": sent.filter(contact__livemode=False).count(),
        "events_today": Event.objects.filter(team=team, livemode=True, created_at__gte=since).count(),
        # Test-mode contacts' emails (to the team's own members) are not counted; transactional ones are.
        "emails_sent": sent.exclude(contact__livemode=False).count(),
        "deliveries_failed": Delivery.objects.filter(team=team, status=Delivery.Status.FAILED).count(),
        "has_endpoint": Endpoint.objects.filter(team=team).exists(),
        "has_active_loop": Loop.objects.filter(team=team, status=Loop.Status.ACTIVE).exists(),
    }
