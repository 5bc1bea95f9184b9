import uuid

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse

from accounts.models import Team

from .stripe_events import EVENT_TYPE_CHOICES


class Endpoint(models.Model):
    """Where one Stripe account posts its webhooks. The UUID in the URL is unguessable."""

    class Platform(models.TextChoices):
        STRIPE = "stripe", "Stripe"

    class Mode(models.TextChoices):
        LIVE = "live", "Live mode"
        TEST = "test", "Test mode"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="endpoints")
    platform = models.CharField(max_length=16, choices=Platform.choices, default=Platform.STRIPE)
    name = models.CharField(max_length=120, default="Stripe")
    # Which of Stripe's modes this endpoint takes events from; chosen at creation, never changed (its
    # deliveries, contacts and events belong to that mode). The other mode's events are ignored.
    mode = models.CharField(max_length=4, choices=Mode.choices, default=Mode.LIVE)
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    signing_secret = models.CharField(max_length=255, blank=True)
    # How old a signed timestamp may be. Positive by constraint: there is no "off".
    tolerance = models.PositiveIntegerField(
        default=settings.WEBHOOK_DEFAULT_TOLERANCE_SECONDS, validators=[MinValueValidator(1)]
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(platform__in=["stripe"]), name="endpoint_platform_valid"),
            models.CheckConstraint(condition=Q(mode__in=["live", "test"]), name="endpoint_mode_valid"),
            models.CheckConstraint(condition=Q(tolerance__gte=1), name="endpoint_tolerance_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.team})"

    @property
    def livemode(self) -> bool:
        return self.mode == self.Mode.LIVE

    def get_receive_path(self) -> str:
        return reverse("webhooks:stripe-receive", kwargs={"endpoint_uuid": self.uuid})

    @property
    def secret_hint(self) -> str:
        """What may be shown of the secret once saved: its kind and last four characters."""
        if not self.signing_secret:
            return ""
        prefix = "whsec_" if self.signing_secret.startswith("whsec_") else ""
        return f"{prefix}…{self.signing_secret[-4:]}"


class EventSetting(models.Model):
    """Per endpoint and supported Stripe type: accept it or not, and which event it fires."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="event_settings")
    event_type = models.CharField(max_length=64, choices=EVENT_TYPE_CHOICES)
    enabled = models.BooleanField(default=True)
    trigger_event_name = models.CharField(
        max_length=120, blank=True, help_text="The event to fire for the contact. Blank: only sync the contact."
    )

    class Meta:
        ordering = ["event_type"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event_type"], name="eventsetting_endpoint_type_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.trigger_event_name or '(sync only)'}"


class IgnoredReason(models.TextChoices):
    """Why a verified delivery is answered 200 and kept, but not processed."""

    UNSUPPORTED = "unsupported_type", "Event type not supported"
    DISABLED = "type_disabled", "Event type not ticked on this endpoint"
    NO_EMAIL = "no_email", "No email"
    INVALID_EMAIL = "invalid_email", "Invalid email"
    TEST_ON_LIVE = "test_mode_event", "A test-mode event on a live-mode endpoint"
    LIVE_ON_TEST = "live_mode_event", "A live-mode event on a test-mode endpoint"


class Delivery(models.Model):
    """Every webhook that passed the signature check, kept before it is answered."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        IGNORED = "ignored", "Ignored"
        PROCESSING = "processing", "Processing"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed"

    IgnoredReason = IgnoredReason

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    stripe_event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=128)
    livemode = models.BooleanField(default=False)
    # Sent by this app's "Send test event" (signed with the endpoint's secret like any other), not by Stripe:
    # always a test-mode event, accepted by live endpoints too, and its data is test data.
    sample = models.BooleanField(default=False)
    api_version = models.CharField(max_length=64, blank=True)
    account = models.CharField(max_length=255, blank=True, help_text="The Connect account, if any.")
    event_created = models.DateTimeField(null=True, blank=True)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    ignored_reason = models.CharField(max_length=32, choices=IgnoredReason.choices, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    # When the sweeper should look again: a stalled `received` row, or a `processing` claim whose
    # worker died (its lease ran out).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "stripe_event_id"], name="delivery_endpoint_event_uniq"),
            models.CheckConstraint(
                condition=Q(status__in=["received", "ignored", "processing", "processed", "failed"]),
                name="delivery_status_valid",
            ),
            # "Send test event" sends test-mode samples only: their data is always test data.
            models.CheckConstraint(condition=~Q(sample=True, livemode=True), name="delivery_sample_is_test_mode"),
            models.CheckConstraint(
                condition=Q(status="ignored", ignored_reason__in=IgnoredReason.values)
                | (~Q(status="ignored") & Q(ignored_reason="")),
                name="delivery_ignored_has_reason",
            ),
        ]
        indexes = [
            # The sweeper: `status IN (received, processing) AND next_attempt_at <= now()`.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["received", "processing"]),
                name="delivery_due_idx",
            ),
            # The drain's claim: `status = 'received' ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED`.
            models.Index(fields=["id"], condition=Q(status="received"), name="delivery_received_idx"),
            # The webhook log: one endpoint's deliveries, newest first.
            models.Index(fields=["endpoint", "-received_at", "-id"], name="delivery_endpoint_recent_idx"),
            models.Index(fields=["team", "status", "-received_at"], name="delivery_team_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.stripe_event_id} ({self.status})"

    @property
    def mode_mismatch(self) -> bool:
        """Ignored for being of the other Stripe mode: an endpoint's mode never changes, so no replay helps."""
        return self.ignored_reason in {IgnoredReason.TEST_ON_LIVE, IgnoredReason.LIVE_ON_TEST}
