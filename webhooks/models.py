import uuid
from datetime import timedelta

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from accounts.models import Team

from .stripe_events import EVENT_TYPE_CHOICES


class CustomerDeleted(models.TextChoices):
    UNSUBSCRIBE = "unsubscribe", "Unsubscribe the contact"
    DELETE = "delete", "Delete the contact"


class Endpoint(models.Model):
    """Where one Stripe account posts its webhooks. The UUID in the URL is unguessable."""

    class Platform(models.TextChoices):
        STRIPE = "stripe", "Stripe"

    class Mode(models.TextChoices):
        LIVE = "live", "Live mode"
        TEST = "test", "Test mode"

    CustomerDeleted = CustomerDeleted

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
    # Options, as in Loops: what new contacts from this endpoint get, and what a deleted customer means.
    new_contact_user_group = models.CharField(
        "User group for new contacts", max_length=120, blank=True, help_text="Blank: no user group."
    )
    new_contact_list = models.ForeignKey(
        "contacts.MailingList",
        verbose_name="Mailing list new contacts join",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    customer_deleted = models.CharField(
        "When a customer is deleted in Stripe",
        max_length=12,
        choices=CustomerDeleted.choices,
        default=CustomerDeleted.UNSUBSCRIBE,
    )
    # A restricted key (rk_…), read-only, for import, catch-up and learning an unknown customer's email.
    # Validated with one call when saved; shown afterwards only as its hint, never logged.
    api_key = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(platform__in=["stripe"]), name="endpoint_platform_valid"),
            models.CheckConstraint(condition=Q(mode__in=["live", "test"]), name="endpoint_mode_valid"),
            models.CheckConstraint(condition=Q(tolerance__gte=1), name="endpoint_tolerance_positive"),
            models.CheckConstraint(
                condition=Q(customer_deleted__in=CustomerDeleted.values), name="endpoint_customer_deleted_valid"
            ),
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

    @property
    def api_key_hint(self) -> str:
        """The key's kind and last four characters, as Stripe's dashboard shows them."""
        if not self.api_key:
            return ""
        prefix = next((p for p in ("rk_live_", "rk_test_") if self.api_key.startswith(p)), "")
        return f"{prefix}…{self.api_key[-4:]}"


class EventSetting(models.Model):
    """Per endpoint and supported Stripe type: accept it or not, and which event it fires."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="event_settings")
    event_type = models.CharField(max_length=64, choices=EVENT_TYPE_CHOICES)
    enabled = models.BooleanField(default=True)
    trigger_event_name = models.CharField(
        max_length=120, blank=True, help_text="The event to fire for the contact. Blank: only sync the contact."
    )
    additional_event_name = models.CharField(
        max_length=120, blank=True, help_text="A second event fired beside the first (Loops' additional custom event)."
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
    NO_EMAIL = "no_email", "No email and no customer"
    CUSTOMER_UNKNOWN = "customer_unknown", "Customer unknown"
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

    # No index of their own: delivery_team_status_idx and the (endpoint, event id) key lead with them, and each
    # index is one more write on the receive path.
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
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


class StripeSync(models.Model):
    """One import of a Stripe account's customers, or one catch-up of its events, run with the endpoint's
    key. It records where it is after every page, so a worker that dies leaves it resumable."""

    # A running sync whose heartbeat is older than this lost its worker.
    STALE_AFTER = timedelta(minutes=3)

    class Kind(models.TextChoices):
        IMPORT = "import", "Import customers"
        CATCHUP = "catchup", "Catch up events"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="syncs")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    fire_events = models.BooleanField(default=False, help_text="Import: fire the endpoint's events too.")
    since = models.DateTimeField(null=True, blank=True, help_text="Catch-up: events created from then on.")
    # Where it is: the phase (customers, subscriptions, invoices, events, replays) and the last object id done.
    phase = models.CharField(max_length=16, blank=True)
    cursor = models.CharField(max_length=255, blank=True)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(null=True, blank=True)  # about how many, when Stripe can tell
    counts = models.JSONField(default=dict, blank=True)
    last_error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    # Bumped after every page: a running sync whose heartbeat is old lost its worker and may be resumed.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Who runs it now: set by each claim, and every save checks it, so a worker that was given up on (its
    # heartbeat went stale) and comes back cannot overwrite the progress of the one that took over.
    claim = models.UUIDField(null=True, blank=True, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Not a field: set by webhooks.services.syncs.sync_start, true when it found this sync unfinished and
    # resumed it (the options given then were not applied).
    resumed: bool

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=["import", "catchup"]), name="stripesync_kind_valid"),
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "done", "failed"]), name="stripesync_status_valid"
            ),
            # One unfinished sync of each kind per endpoint: a second start resumes it instead.
            models.UniqueConstraint(
                fields=["endpoint", "kind"],
                condition=Q(status__in=["queued", "running"]),
                name="stripesync_one_unfinished_uniq",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.endpoint_id} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.FAILED}

    SUMMARY_LABELS = {
        "created": "Contacts created",
        "updated": "Contacts updated",
        "no_email": "Customers without an email, skipped",
        "subscriptions": "Subscriptions synced",
        "subscriptions_without_contact": "Subscriptions of customers without a contact",
        "paid_invoices": "Paid invoices counted",
        "paid_invoices_without_contact": "Paid invoices of customers without a contact",
        "events_fired": "Events fired",
        "replayed": "Deliveries waiting for their customer (“customer unknown”), sent through again",
        "queued": "New events, processed like webhooks (the webhook log has each)",
        "duplicate": "Events already received, skipped",
        "ignored": "Events ignored (the webhook log says why)",
        "not_supported": "Events of types LoopSync does not take",
        "refused": "Events refused",
    }

    @property
    def summary(self) -> list[tuple[str, int]]:
        order = list(self.SUMMARY_LABELS)
        keys = sorted(self.counts, key=lambda key: order.index(key) if key in order else len(order))
        return [(self.SUMMARY_LABELS.get(key, key), self.counts[key]) for key in keys]

    PHASE_LABELS = {
        "customers": "customers",
        "subscriptions": "subscriptions",
        "invoices": "paid invoices",
        "replays": "deliveries waiting for their customer",
        "events": "events",
    }

    @property
    def phase_label(self) -> str:
        return self.PHASE_LABELS.get(self.phase, self.phase)

    @property
    def resumable(self) -> bool:
        """Unfinished, and no worker is at it: Resume (or the sweep) takes it up again."""
        if self.finished:
            return False
        # A queued one waits for its task (a minute at most) or for Stripe; a running one, for its worker.
        quiet = self.STALE_AFTER if self.status == self.Status.RUNNING else timedelta(minutes=1)
        return (self.heartbeat_at or self.created_at) <= timezone.now() - quiet

    @property
    def percent(self) -> int | None:
        if not self.total:
            return None
        return 100 if self.finished else min(99, round(100 * self.done / self.total))


class Rejection(models.Model):
    """Requests an endpoint refused (400: no or a wrong signature, a stale one, a body that is not a Stripe event),
    counted by the hour and kind, with the last one's reason: never their bodies (webhooks.services.health)."""

    class Kind(models.TextChoices):
        SIGNATURE = "signature", "Wrong or missing signature"
        STALE = "stale", "Signature too old"
        BODY = "body", "Not a Stripe event"

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="rejections")
    hour = models.DateTimeField()  # the hour it started
    kind = models.CharField(max_length=16, choices=Kind.choices)
    count = models.PositiveIntegerField(default=0)
    last_at = models.DateTimeField()
    last_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "hour", "kind"], name="rejection_endpoint_hour_kind_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.count} × {self.kind} at {self.hour:%Y-%m-%d %H}h"
