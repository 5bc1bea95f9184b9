"""A contact's way through a loop."""

from django.db import models
from django.db.models import Q

from accounts.models import Team
from contacts.models import Contact

from .events import Event
from .loops import Loop
from .steps import LoopStep


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


PASSED_BEHIND = "behind"  # a run's `passed` value for a step added behind it: passed over, never done
