from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from accounts.models import Team


class Contact(models.Model):
    """One person in a team's Audience. Matched by email, case-insensitively, within the team."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="contacts")
    email = models.EmailField(max_length=254)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    source = models.CharField(max_length=64, blank=True)
    subscribed = models.BooleanField(default=True)
    user_group = models.CharField(max_length=120, blank=True)
    user_id = models.CharField(max_length=255, blank=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    # `created` of the newest Stripe event applied: an older event never overwrites newer data.
    stripe_event_created = models.DateTimeField(null=True, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), "team", name="contact_team_email_ci_uniq"),
            models.UniqueConstraint(
                fields=["team", "user_id"], condition=~Q(user_id=""), name="contact_team_user_id_uniq"
            ),
        ]
        indexes = [
            # The Audience page: a team's contacts, newest first.
            models.Index(fields=["team", "-created_at", "-id"], name="contact_team_created_idx"),
            # contact_sync: a late event found by its Stripe customer after an email change.
            models.Index(
                fields=["team", "stripe_customer_id"],
                condition=~Q(stripe_customer_id=""),
                name="contact_team_customer_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)
