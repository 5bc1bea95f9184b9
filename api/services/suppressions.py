"""Loops' suppression list, which is our unsubscribed state: taking a contact off it, within a quota."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import Team
from contacts.models import Contact
from contacts.services import contact_set_subscribed

from ..models import SuppressionRemoval

SUPPRESSION_REMOVALS_PER_30_DAYS = 100


class NotSuppressed(Exception):
    """The contact is subscribed: there is nothing to remove."""


class RemovalsExhausted(Exception):
    """The team used its removals of the last 30 days."""


def suppression_quota(*, team: Team) -> dict[str, int]:
    used = SuppressionRemoval.objects.filter(team=team, created_at__gte=timezone.now() - timedelta(days=30)).count()
    return {"limit": SUPPRESSION_REMOVALS_PER_30_DAYS, "remaining": max(0, SUPPRESSION_REMOVALS_PER_30_DAYS - used)}


def suppression_remove(*, team: Team, contact: Contact) -> dict[str, int]:
    """Resubscribe a suppressed contact and count it against the team's 30-day quota. Returns the quota left.
    Raises NotSuppressed or RemovalsExhausted."""
    if contact.subscribed:
        raise NotSuppressed("This contact is not suppressed.")
    with transaction.atomic():
        Team.objects.select_for_update().get(pk=team.pk)  # one removal at a time: the quota holds
        if suppression_quota(team=team)["remaining"] <= 0:
            raise RemovalsExhausted("No suppression removals left in the last 30 days.")
        contact_set_subscribed(contact=contact, subscribed=True, by=Contact.UnsubscribedBy.API)
        SuppressionRemoval.objects.create(team=team, contact_id=contact.pk)
    return suppression_quota(team=team)
