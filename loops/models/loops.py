"""A loop (its trigger, frequency and status) and the templates a team copies into a new loop."""

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from accounts.models import Team
from contacts.models import MailingList


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
