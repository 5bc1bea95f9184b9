"""A loop's steps: the nodes of its tree, and what each kind checks before it is saved."""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from accounts.models import Team
from accounts.services.senders import sender_email_problem
from contacts.models import MailingList

from ..rendering import EMAIL_TEMPLATE_FIELDS, templates_check
from .loops import Loop


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
    # Opens and clicks of this step's emails (when the team tracks them too: Team.email_tracking).
    tracking = models.BooleanField(default=True, db_default=True)
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
