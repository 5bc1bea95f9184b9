from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from accounts.models import Team


class ContactQuerySet(models.QuerySet["Contact"]):
    def live(self) -> "ContactQuerySet":
        """Live-mode contacts: what the Audience, the API and every send outside test mode work with."""
        return self.filter(livemode=True)

    def with_email(self, email: str) -> "ContactQuerySet":
        """Contacts with this email, in any case: `Lower(email)` is what the team's unique index holds,
        so with a team filter this is an index look-up."""
        return self.alias(email_lower=Lower("email")).filter(email_lower=email.strip().lower())


@dataclass(frozen=True)
class StandardField:
    loops_name: str  # as Loops' API and its clients name it
    field: str  # the model's
    label: str
    type: str  # as `contacts/properties` lists it: string, boolean…


# A contact's standard fields: the one list of them (the API, its properties list, loop filters, templates).
CONTACT_FIELDS = (
    StandardField("email", "email", "Email", "string"),
    StandardField("firstName", "first_name", "First name", "string"),
    StandardField("lastName", "last_name", "Last name", "string"),
    StandardField("source", "source", "Source", "string"),
    StandardField("subscribed", "subscribed", "Subscribed", "boolean"),
    StandardField("userGroup", "user_group", "User group", "string"),
    StandardField("userId", "user_id", "User ID", "string"),
)
STANDARD_FIELDS = {f.loops_name: f.field for f in CONTACT_FIELDS}  # Loops' names → ours


class UnsubscribedBy(models.TextChoices):
    """Who unsubscribed a contact ("" for a subscribed one, or one unsubscribed before this was recorded)."""

    LINK = "link", "the contact, with the unsubscribe link"
    TEAM = "team", "a team member"
    API = "api", "the API"
    STRIPE = "stripe", "Stripe, when the customer was deleted"
    # Suppressions the email provider reported (loops.services.tracking): the address is dead or its owner
    # marked an email as spam. Only the API's suppression removal lifts them.
    BOUNCE = "bounce", "a hard bounce"
    COMPLAINT = "complaint", "a spam complaint"


# Reported by the email provider: never lifted by a team member, an import or an API upsert; only by the API's
# suppression removal (mailing a dead address or a complainer again hurts the sending reputation of everyone).
SUPPRESSED_BY_PROVIDER = (UnsubscribedBy.BOUNCE, UnsubscribedBy.COMPLAINT)


class Contact(models.Model):
    """One person in a team's Audience. Matched by email, case-insensitively, within the team and mode.

    Stripe keeps test-mode and live-mode data apart, and so do we: a test-mode event syncs a test contact
    (`livemode` false), and the same email can be both a live and a test contact of a team."""

    UnsubscribedBy = UnsubscribedBy

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="contacts")
    email = models.EmailField(max_length=254)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    source = models.CharField(max_length=64, blank=True)
    subscribed = models.BooleanField(default=True)
    # Who unsubscribed the contact: one who did it with the link in an email is never resubscribed from the
    # Audience page (only by themselves, or through the API's suppression removal).
    unsubscribed_by = models.CharField(max_length=16, choices=UnsubscribedBy.choices, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    # What the provider said for a bounce or a complaint (its diagnostic), shown on the contact's page.
    unsubscribe_reason = models.CharField(max_length=500, blank=True, db_default="", default="")
    # False for contacts synced from Stripe test-mode events: kept apart from live contacts.
    livemode = models.BooleanField(default=True)
    user_group = models.CharField(max_length=120, blank=True)
    user_id = models.CharField(max_length=255, blank=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    # `created` of the newest Stripe event applied: an older event never overwrites newer data.
    stripe_event_created = models.DateTimeField(null=True, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    # The newest snapshot of each Stripe object behind the billing properties, with its event's time
    # (contacts.billing): what lets an older event leave newer billing state alone.
    stripe_billing = models.JSONField(default=dict, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ContactQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), "team", "livemode", name="contact_team_email_ci_uniq"),
            models.UniqueConstraint(
                fields=["team", "livemode", "user_id"], condition=~Q(user_id=""), name="contact_team_user_id_uniq"
            ),
            models.CheckConstraint(
                condition=Q(unsubscribed_by__in=["", *UnsubscribedBy.values]), name="contact_unsubscribed_by_valid"
            ),
            # Resubscribing forgets who unsubscribed: a subscribed contact carries neither.
            models.CheckConstraint(
                condition=Q(subscribed=False)
                | Q(unsubscribed_by="", unsubscribed_at__isnull=True, unsubscribe_reason=""),
                name="contact_subscribed_has_no_unsubscribe",
            ),
        ]
        indexes = [
            # The Audience page: a team's contacts, newest first.
            models.Index(fields=["team", "-created_at", "-id"], name="contact_team_created_idx"),
            # The Audience filtered by source, newest first, and its list of sources (selectors.audience_sources
            # walks this index's (team, source) prefix, one distinct source per probe).
            models.Index(fields=["team", "source", "-created_at", "-id"], name="contact_team_source_idx"),
            # The Audience filtered to unsubscribed contacts (alone or with a search), newest first: small, as
            # few contacts unsubscribe, and as fast at 0.1% unsubscribed as at 10%.
            models.Index(
                fields=["team", "-created_at", "-id"], condition=Q(subscribed=False), name="contact_team_unsub_idx"
            ),
            # The Audience's "Test data" switch: a team's test-mode contacts, newest first (partial: few are).
            models.Index(
                fields=["team", "-created_at", "-id"], condition=Q(livemode=False), name="contact_team_test_idx"
            ),
            # On PostgreSQL the search also has trigram (pg_trgm) GIN indexes on UPPER(email), UPPER(first_name)
            # and UPPER(last_name), and a btree for email prefixes: migration 0004 creates them, as they cannot
            # be declared here portably.
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


class MailingList(models.Model):
    """A list contacts subscribe to (Loops' mailing lists): a newsletter, product updates."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="mailing_lists")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    is_public = models.BooleanField(default=False, help_text="Shown to contacts on their preference page.")
    contacts = models.ManyToManyField(Contact, through="ListMembership", related_name="mailing_lists")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="mailinglist_team_name_uniq")]

    def __str__(self) -> str:
        return self.name


class ListMembership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    mailing_list = models.ForeignKey(MailingList, on_delete=models.CASCADE)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["mailing_list", "contact"], name="listmembership_uniq")]
        indexes = [models.Index(fields=["contact"], name="listmembership_contact_idx")]

    def __str__(self) -> str:
        return f"{self.contact_id} in {self.mailing_list_id}"


class ContactProperty(models.Model):
    """A custom contact property and its type; values live in `Contact.properties` under `key`."""

    class Type(models.TextChoices):
        STRING = "string", "Text"
        NUMBER = "number", "Number"
        BOOLEAN = "boolean", "Yes/no"
        DATE = "date", "Date"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="contact_properties")
    key = models.CharField(max_length=64)
    label = models.CharField(max_length=120)
    type = models.CharField(max_length=8, choices=Type.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(fields=["team", "key"], name="contactproperty_team_key_uniq"),
            models.CheckConstraint(
                condition=Q(type__in=["string", "number", "boolean", "date"]), name="contactproperty_type_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.type})"


class ContactImport(models.Model):
    """One CSV file imported into a team's Audience (contacts.services.importing): uploaded, its columns mapped
    to fields and properties, then run in Celery in batches. It records where it is after every batch, so a
    worker that dies leaves it resumable, and keeps the rows it refused (ContactImportError, up to ERRORS_KEPT) for
    download."""

    STALE_AFTER = timedelta(minutes=3)  # a running import whose heartbeat is older lost its worker
    ERRORS_KEPT = 10_000

    class Status(models.TextChoices):
        MAPPING = "mapping", "Waiting for its columns"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Importing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    filename = models.CharField(max_length=255)
    data = models.BinaryField(editable=False)  # the file, zlib-compressed
    columns = models.JSONField(default=list)  # the header row
    # What the upload's scan found besides: each column's samples and type, the first rows (the mapping page)
    scan = models.JSONField(default=dict, blank=True, editable=False)
    mapping = models.JSONField(default=list, blank=True)  # per column: a target (contacts.services.importing)
    trigger_loops = models.BooleanField(default=False)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.MAPPING)
    total = models.PositiveIntegerField(default=0)  # data rows in the file
    done = models.PositiveIntegerField(default=0)  # data rows handled, in file order
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    claim = models.UUIDField(null=True, blank=True, editable=False)  # who runs it now (loopsync.jobs)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["team", "-created_at"], name="contactimport_team_created_idx")]

    def __str__(self) -> str:
        return f"{self.filename} ({self.status})"

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, self.done * 100 // self.total)

    @property
    def finished(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.FAILED}


class ContactImportError(models.Model):
    """A row an import refused: its line in the file, why, and its cells as they were (to fix and upload again)."""

    contact_import = models.ForeignKey(ContactImport, on_delete=models.CASCADE, related_name="error_rows")
    line = models.PositiveIntegerField()
    reason = models.CharField(max_length=300)
    cells = models.JSONField(default=list)

    class Meta:
        ordering = ["line"]
        indexes = [models.Index(fields=["contact_import", "line"], name="contactimporterror_line_idx")]

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class Segment(models.Model):
    """A saved filter of the Audience: a condition tree (contacts.conditions) with a name, unique in the team in
    any case. The Audience, its export and its bulk actions select with it (contacts.querying)."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="segments")
    name = models.CharField(max_length=120)
    conditions = models.JSONField(default=dict)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(Lower("name"), "team", name="segment_team_name_uniq")]

    def __str__(self) -> str:
        return self.name
