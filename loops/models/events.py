"""Events: what happened to a contact (a Stripe event, an API call…), which starts loops and wakes waits."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import Team
from contacts.models import Contact


class Event(models.Model):
    """A named thing that happened to a contact (`failedPayment`, ...). Events start loops."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="events")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="events")
    name = models.CharField(max_length=120)
    properties = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=64, blank=True)
    # The Stripe event id for events from Stripe: the same Stripe event never fires twice.
    idempotency_key = models.CharField(max_length=255, blank=True)
    # When it happened at its source (Stripe's `created`): events can arrive out of order.
    occurred_at = models.DateTimeField(default=timezone.now)
    # Its contact's mode: false for the events of test-mode contacts, shown behind the "Test data" switch.
    livemode = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["team", "idempotency_key"], condition=~Q(idempotency_key=""), name="event_team_idem_uniq"
            ),
        ]
        indexes = [
            # The Events page: a team's events, newest first, optionally by name.
            models.Index(fields=["team", "-created_at", "-id"], name="event_team_created_idx"),
            # The Events page's "Test data" switch (partial: test-mode events are few).
            models.Index(
                fields=["team", "-created_at", "-id"], condition=Q(livemode=False), name="event_team_test_idx"
            ),
            models.Index(fields=["team", "name", "-created_at"], name="event_team_name_idx"),
            models.Index(fields=["contact", "-created_at"], name="event_contact_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} for {self.contact_id}"
