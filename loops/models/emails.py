"""Emails: those loop steps send, and the transactional ones an app sends through the API."""

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import Team
from accounts.services.senders import sender_email_problem
from contacts.models import Contact

from ..rendering import EMAIL_TEMPLATE_FIELDS, templates_check
from .runs import LoopRun
from .steps import LoopStep


class EmailMessage(models.Model):
    """One email a loop step sends to one contact; at most one per (run, step)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    # Blank only for a transactional email to an address that is not a contact.
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, null=True, blank=True, related_name="emails")
    transactional = models.ForeignKey(
        "TransactionalEmail", on_delete=models.SET_NULL, null=True, blank=True, related_name="messages"
    )
    run = models.ForeignKey(LoopRun, on_delete=models.CASCADE, null=True, blank=True, related_name="emails")
    step = models.ForeignKey(LoopStep, on_delete=models.SET_NULL, null=True, blank=True, related_name="emails")
    to_email = models.EmailField(max_length=254)
    from_email = models.CharField(max_length=320)
    reply_to = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=998)
    preview_text = models.CharField(max_length=255, blank=True)
    html_body = models.TextField()
    text_body = models.TextField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    provider_message_id = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # When a queued message should be looked at again, or when a `sending` claim is stale.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Tracking (loops.tracking): the random key in this email's pixel and links; null when it is not tracked.
    tracking_token = models.CharField(max_length=32, null=True, blank=True)
    # The first open and click, and how many (the events themselves: EmailActivity, up to a cap per email).
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    opens = models.PositiveIntegerField(default=0, db_default=0)
    clicks = models.PositiveIntegerField(default=0, db_default=0)
    # What the provider reported (anymail's tracking webhooks): a hard bounce, a spam complaint.
    bounced_at = models.DateTimeField(null=True, blank=True)
    complained_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "step"], name="emailmessage_run_step_uniq"),
            # A pixel's or a click's email: `tracking_token = %s` (a partial unique index; untracked emails have none).
            models.UniqueConstraint(
                fields=["tracking_token"], condition=Q(tracking_token__isnull=False), name="email_tracking_token_uniq"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["queued", "sending", "sent", "failed", "skipped"]),
                name="emailmessage_status_valid",
            ),
        ]
        indexes = [
            # The sweeper: `status IN ('queued', 'sending') AND next_attempt_at <= now()`.
            models.Index(
                fields=["next_attempt_at"], condition=Q(status__in=["queued", "sending"]), name="email_due_idx"
            ),
            models.Index(fields=["contact", "-created_at"], name="email_contact_recent_idx"),
            models.Index(fields=["team", "status", "-created_at"], name="email_team_status_idx"),
            # The dashboard's emails sent per day: `team = %s AND sent_at >= %s`.
            models.Index(fields=["team", "sent_at"], condition=Q(sent_at__isnull=False), name="email_team_sent_idx"),
            # A provider's event finds its email by the id the provider gave it when it was sent.
            models.Index(
                fields=["provider_message_id"], condition=~Q(provider_message_id=""), name="email_provider_id_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject} → {self.to_email} ({self.status})"


class TransactionalEmail(models.Model):
    """A one-off email an app sends through the API (`POST /api/v1/transactional`): a receipt, a
    password reset. `{{ data.<name> }}` in the subject and body takes the request's `dataVariables`.
    Sent whether or not the address is subscribed, without an unsubscribe link."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="transactional_emails")
    # The `transactionalId` an app sends: stable, unguessable, shown on the page.
    public_id = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=120)
    subject = models.CharField(max_length=255)
    preview_text = models.CharField(max_length=255, blank=True)
    from_name = models.CharField(max_length=120, blank=True)
    from_email = models.EmailField(blank=True)
    reply_to = models.EmailField(blank=True)
    body = models.TextField(help_text="Markdown with Liquid: {{ data.reset_url }}, {{ contact.first_name }}.")
    # Names every request must supply in `dataVariables`.
    required_variables = models.JSONField(default=list, blank=True)
    # Opens and clicks of this email's sends (when the team tracks them too: Team.email_tracking).
    tracking = models.BooleanField(default=True, db_default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = templates_check(**{field: getattr(self, field) for field in EMAIL_TEMPLATE_FIELDS})
        sender_problem = sender_email_problem(team_id=self.team_id, email=self.from_email)
        if sender_problem:
            errors.setdefault("from_email", []).append(sender_problem)
        if errors:
            raise ValidationError(errors)


class EmailActivity(models.Model):
    """Something that happened to a sent email: an open or a click (loops.tracking), or what the provider
    reported (delivered, deferred, bounced, complained…). The email keeps the totals; at most
    ACTIVITY_PER_EMAIL of its opens and clicks are kept as rows, so one forwarded email cannot fill a table."""

    class Kind(models.TextChoices):
        OPEN = "open", "Opened"
        CLICK = "click", "Clicked"
        DELIVERED = "delivered", "Delivered"
        DEFERRED = "deferred", "Deferred"
        BOUNCE = "bounce", "Bounced"
        REJECTED = "rejected", "Rejected"
        COMPLAINT = "complaint", "Marked as spam"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed at the provider"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey(EmailMessage, on_delete=models.CASCADE, related_name="activity")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    url = models.TextField(blank=True)  # a click's destination
    detail = models.CharField(max_length=500, blank=True)  # the provider's description or diagnostic
    # The provider's id of its event: a webhook it sends again is recorded once.
    provider_event_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    kind__in=[
                        "open",
                        "click",
                        "delivered",
                        "deferred",
                        "bounce",
                        "rejected",
                        "complaint",
                        "unsubscribed",
                    ]
                ),  # fmt: skip
                name="emailactivity_kind_valid",
            ),
            models.UniqueConstraint(
                fields=["message", "provider_event_id"],
                condition=~Q(provider_event_id=""),
                name="emailactivity_provider_event_uniq",
            ),
        ]
        indexes = [
            models.Index(fields=["message", "created_at"], name="activity_message_idx"),
            # The contact's timeline: its opens, clicks and bounces, newest first.
            models.Index(fields=["contact", "-created_at"], name="activity_contact_idx"),
            # The dashboard: a team's opens, clicks and bounces per day.
            models.Index(fields=["team", "kind", "created_at"], name="activity_team_kind_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} · email {self.message_id}"
