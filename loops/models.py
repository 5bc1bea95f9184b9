from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.models import Team
from accounts.services.senders import sender_email_problem
from contacts.models import Contact, MailingList

from .rendering import EMAIL_TEMPLATE_FIELDS, templates_check


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


class Loop(models.Model):
    """An email workflow: a trigger, how often it enrols a contact, and a tree of steps (LoopStep) that each
    run at most once per run."""

    class Trigger(models.TextChoices):
        EVENT = "event", "Event received"
        CONTACT_ADDED = "contact_added", "Contact added"
        CONTACT_UPDATED = "contact_updated", "Contact updated"
        LIST_ADDED = "list_added", "Added to a mailing list"

    class Frequency(models.TextChoices):
        ONCE = "once", "Once per contact"
        EVERY = "every", "Every time"
        PER_KEY = "per_key", "Once per key"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        ARCHIVED = "archived", "Archived"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="loops")
    name = models.CharField(max_length=120)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.EVENT)
    trigger_event_name = models.CharField(max_length=120, blank=True)
    # Contact updated: the field or property watched ("" = any change), and the change: from a value, to a
    # value, or both (a `_set` flag off means any value).
    trigger_field = models.CharField(max_length=120, blank=True)
    trigger_from = models.CharField(max_length=255, blank=True)
    trigger_from_set = models.BooleanField(default=False)
    trigger_to = models.CharField(max_length=255, blank=True)
    trigger_to_set = models.BooleanField(default=False)
    # Added to a mailing list
    trigger_list = models.ForeignKey(MailingList, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    frequency = models.CharField(max_length=8, choices=Frequency.choices, default=Frequency.EVERY)
    # Once per key: the property of the triggering event whose value is the key (`invoice_id`).
    frequency_key = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.DRAFT)
    template_slug = models.CharField(max_length=64, blank=True, help_text="The template this loop was copied from.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(trigger__in=["event", "contact_added", "contact_updated", "list_added"]),
                name="loop_trigger_valid",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["draft", "active", "paused", "archived"]), name="loop_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(frequency__in=["once", "every", "per_key"]), name="loop_frequency_valid"
            ),
            models.UniqueConstraint("team", Lower("name"), name="loop_team_name_uniq"),
        ]
        indexes = [
            # Enrolment: `team = ? AND status = 'active' AND trigger = ? AND trigger_event_name = ?`.
            models.Index(
                fields=["team", "trigger", "trigger_event_name"],
                condition=Q(status="active"),
                name="loop_active_trigger_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def trigger_label(self) -> str:
        if self.trigger == self.Trigger.EVENT:
            return f"Event received: {self.trigger_event_name or '(no name)'}"
        if self.trigger == self.Trigger.LIST_ADDED:
            return f"Added to {self.trigger_list.name if self.trigger_list else '(no list)'}"
        if self.trigger == self.Trigger.CONTACT_UPDATED:
            what = self.trigger_field.removeprefix("contact.").removeprefix("properties.") or "any field"
            change = "".join(
                [
                    f" from “{self.trigger_from}”" if self.trigger_from_set else "",
                    f" to “{self.trigger_to}”" if self.trigger_to_set else "",
                ]
            )
            return f"Contact updated: {what}{change}"
        return self.get_trigger_display()

    @property
    def frequency_label(self) -> str:
        if self.frequency == self.Frequency.PER_KEY:
            return f"Once per {self.frequency_key or '(no key)'}"
        return self.get_frequency_display()


class LoopStep(models.Model):
    """One node of a loop's tree. The loop starts at its root (no parent); a step's children hang from its ports:
    one port for most kinds, one per path for a branch and per variant for an experiment. A port with no child
    ends the run there. Which fields matter depends on `kind`."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Send email"
        TIMER = "timer", "Timer"
        FILTER = "filter", "Audience filter"
        WAIT_EVENT = "wait_event", "Wait for event"
        BRANCH = "branch", "Branch"
        EXPERIMENT = "experiment", "Experiment"
        UPDATE_CONTACT = "update_contact", "Update contact"

    class Unit(models.TextChoices):
        MINUTES = "minutes", "minutes"
        HOURS = "hours", "hours"
        DAYS = "days", "days"

    class Then(models.TextChoices):
        CONTINUE = "continue", "continue the loop"
        STOP = "stop", "stop the loop"

    class Update(models.TextChoices):
        SET_PROPERTY = "set_property", "Set a property"
        CLEAR_PROPERTY = "clear_property", "Clear a property"
        JOIN_LIST = "join_list", "Add to a mailing list"
        LEAVE_LIST = "leave_list", "Remove from a mailing list"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    loop = models.ForeignKey(Loop, on_delete=models.CASCADE, related_name="steps")
    parent = models.ForeignKey("self", on_delete=models.CASCADE, null=True, blank=True, related_name="children")
    port = models.PositiveSmallIntegerField(default=0)  # which of the parent's ports this step hangs from
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Send email
    subject = models.CharField(max_length=255, blank=True)
    preview_text = models.CharField(max_length=255, blank=True)
    from_name = models.CharField(max_length=120, blank=True)
    from_email = models.EmailField(blank=True)
    reply_to = models.EmailField(blank=True)
    body = models.TextField(blank=True, help_text="Markdown with Liquid: {{ contact.first_name }}, {{ event.amount }}.")
    # Timer, and the timeout of Wait for event
    delay_value = models.PositiveIntegerField(default=0)
    delay_unit = models.CharField(max_length=8, choices=Unit.choices, default=Unit.DAYS)
    # Audience filter: a condition tree (contacts.conditions); a run that does not match ends here.
    conditions = models.JSONField(default=dict, blank=True)
    # Branch: [{"name", "conditions"}], first match wins, a last path with no conditions is the catch-all.
    # Experiment: [{"name", "percent", "control"}]. A path's index is its port.
    paths = models.JSONField(default=list, blank=True)
    # Wait for event
    wait_event_name = models.CharField(max_length=120, blank=True)
    on_event = models.CharField(max_length=8, choices=Then.choices, default=Then.CONTINUE)
    on_timeout = models.CharField(max_length=8, choices=Then.choices, default=Then.STOP)
    # Update contact
    update_action = models.CharField(max_length=16, choices=Update.choices, blank=True)
    update_property = models.CharField(max_length=64, blank=True)
    update_value = models.CharField(max_length=255, blank=True)
    update_list = models.ForeignKey(MailingList, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["loop", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    kind__in=["email", "timer", "filter", "wait_event", "branch", "experiment", "update_contact"]
                ),
                name="loopstep_kind_valid",
            ),
            # A tree: one child per port.
            models.UniqueConstraint(
                fields=["parent", "port"], condition=Q(parent__isnull=False), name="loopstep_parent_port_uniq"
            ),
        ]
        indexes = [models.Index(fields=["loop", "parent"], name="loopstep_loop_parent_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.pk})"

    @property
    def delay(self) -> timedelta:
        return timedelta(**{self.delay_unit: self.delay_value})

    @property
    def ports(self) -> int:
        """How many ports children can hang from."""
        if self.kind in {self.Kind.BRANCH, self.Kind.EXPERIMENT}:
            return len(self.paths)
        return 1

    MAX_DELAY = {"minutes": 525_600, "hours": 8_760, "days": 365}
    MAX_PATHS = 10

    def _within_a_year(self) -> bool:
        return self.delay_value <= self.MAX_DELAY.get(self.delay_unit, 0)

    def clean(self) -> None:
        """Refuse a step that cannot work: templates that do not parse, missing names and values. (Conditions
        are checked against the team's fields by the editor's form and the importer: loops.services.graph.)"""
        errors: dict[str, list[str]] = {}

        def check(field: str, ok: bool, message: str) -> None:
            if not ok:
                errors.setdefault(field, []).append(message)

        if self.kind == self.Kind.EMAIL:
            check("subject", bool(self.subject.strip()), "An email needs a subject.")
            check("body", bool(self.body.strip()), "An email needs a body.")
            for name, messages in templates_check(**{f: getattr(self, f) for f in EMAIL_TEMPLATE_FIELDS}).items():
                errors.setdefault(name, []).extend(messages)
            sender_problem = sender_email_problem(team_id=self.team_id, email=self.from_email)
            check("from_email", sender_problem is None, sender_problem or "")
        elif self.kind == self.Kind.TIMER:
            check("delay_value", self.delay_value > 0, "A timer waits at least 1 " + self.delay_unit.rstrip("s") + ".")
            check("delay_value", self._within_a_year(), "A timer waits at most a year.")
        elif self.kind == self.Kind.FILTER:
            check("conditions", bool((self.conditions or {}).get("rules")), "A filter needs at least one rule.")
        elif self.kind == self.Kind.WAIT_EVENT:
            check("wait_event_name", bool(self.wait_event_name.strip()), "Name the event to wait for.")
            check("delay_value", self.delay_value > 0, "A wait needs a timeout of at least 1.")
            check("delay_value", self._within_a_year(), "A wait's timeout is at most a year.")
        elif self.kind == self.Kind.BRANCH:
            paths = self.paths or []
            check("paths", 2 <= len(paths) <= self.MAX_PATHS, f"A branch has 2 to {self.MAX_PATHS} paths.")
            catch_alls = [i for i, path in enumerate(paths) if not (path.get("conditions") or {}).get("rules")]
            check("paths", not catch_alls or catch_alls == [len(paths) - 1], "Only the last path may be a catch-all.")
            check("paths", all(str(path.get("name", "")).strip() for path in paths), "Name every path.")
        elif self.kind == self.Kind.EXPERIMENT:
            paths = self.paths or []
            check("paths", 2 <= len(paths) <= self.MAX_PATHS, f"An experiment has 2 to {self.MAX_PATHS} variants.")
            percents = [path.get("percent") for path in paths]
            valid = all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= 100 for p in percents)
            check(
                "paths",
                valid and sum(percents) == 100,
                "Give each variant a whole percent from 0 to 100, the percents adding up to 100.",
            )
            check("paths", sum(bool(path.get("control")) for path in paths) <= 1, "At most one variant is the control.")
            check("paths", all(str(path.get("name", "")).strip() for path in paths), "Name every variant.")
        elif self.kind == self.Kind.UPDATE_CONTACT:
            action = self.update_action
            check("update_action", action in self.Update.values, "Choose what to change.")
            if action in {self.Update.SET_PROPERTY, self.Update.CLEAR_PROPERTY}:
                check("update_property", bool(self.update_property.strip()), "Choose the property.")
            if action in {self.Update.JOIN_LIST, self.Update.LEAVE_LIST}:
                check("update_list", self.update_list_id is not None, "Choose the mailing list.")
        if errors:
            raise ValidationError(errors)


class LoopRun(models.Model):
    """One contact's way through one loop, started by one trigger (an event, being added, an update…).

    The run is at `step` (the next to execute, or the timer or wait it is in), and `passed` holds every step it
    has done, or that was added behind it: its next step is the first one on its way from the root it has not
    passed. So steps can be added, removed and reordered while runs are under way, and no run does a step twice
    or misses one ahead of it. `choices` holds the port it took at each branch and experiment (sticky)."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        WAITING = "waiting", "Waiting"
        COMPLETED = "completed", "Completed"
        FILTERED_OUT = "filtered_out", "Filtered out"
        STOPPED = "stopped", "Stopped"
        FAILED = "failed", "Failed"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    loop = models.ForeignKey(Loop, on_delete=models.CASCADE, related_name="runs")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="loop_runs")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, null=True, blank=True, related_name="runs")
    # What makes the run one of a kind, by the loop's frequency: "once", "event:<id>", "key:<value>",
    # "update:<uuid>"… Unique per loop and contact.
    entry_key = models.CharField(max_length=300)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    step = models.ForeignKey(LoopStep, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs_here")
    passed = models.JSONField(default=dict, blank=True)  # {"s<step id>": when}
    choices = models.JSONField(default=dict, blank=True)  # {"s<step id>": port}
    waiting_for = models.CharField(max_length=120, blank=True, help_text="The event name a Wait for event step awaits.")
    # When the timer or the wait at `step` ends (set while the run waits at that step).
    wait_until = models.DateTimeField(null=True, blank=True)
    # When the run is next due; also the claim: a worker that takes a run pushes this forward.
    next_due_at = models.DateTimeField(null=True, blank=True)
    history = models.JSONField(default=list, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["loop", "contact", "entry_key"], name="looprun_loop_contact_entry_uniq"),
            models.CheckConstraint(
                condition=Q(status__in=["active", "waiting", "completed", "filtered_out", "stopped", "failed"]),
                name="looprun_status_valid",
            ),
        ]
        indexes = [
            # The beat task: `status IN ('active', 'waiting') AND next_due_at <= now()`.
            models.Index(fields=["next_due_at"], condition=Q(status__in=["active", "waiting"]), name="looprun_due_idx"),
            # An arriving event wakes: `contact = ? AND status = 'waiting' AND waiting_for = ?`.
            models.Index(fields=["contact", "waiting_for"], condition=Q(status="waiting"), name="looprun_waiting_idx"),
            models.Index(fields=["loop", "-created_at"], name="looprun_loop_recent_idx"),
            # Who is where: a loop's runs by step and status.
            models.Index(fields=["loop", "step", "status"], name="looprun_loop_step_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.contact} in {self.loop} ({self.status})"


def step_key(step_id: int) -> str:
    """A step's key in a run's `passed` and `choices` (a JSON object's keys are text)."""
    return f"s{step_id}"


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

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "step"], name="emailmessage_run_step_uniq"),
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


class LoopTemplate(models.Model):
    """A starting point a team copies into a new draft loop. Seeded by a data migration; not tenant-owned."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    # The loop in the JSON format of `manage.py loop_export` (loops.services.graph): name, trigger,
    # frequency, nodes and edges. Seeded from loops/loop_templates/*.json.
    spec = models.JSONField(default=dict)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def trigger_event_name(self) -> str:
        return (self.spec.get("trigger") or {}).get("event", "")
