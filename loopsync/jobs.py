"""Long jobs on one row each, run in turns: a Stripe sync (webhooks.services.syncs) and a contact import
(contacts.services.importing).

A job's row has `status` (queued, running, done, failed), `claim`, `heartbeat_at`, `last_error`, `created_at` and
`finished_at`. A worker takes a job with `Jobs.claim`: one conditional UPDATE of a queued job, or of a running one
whose heartbeat is older than its lease (its worker died), with a fresh claim id. Every save after that
(`Jobs.save`: where the job is, a heartbeat, and at a turn's end its status) is an UPDATE that names the claim id,
so a worker that was given up on and comes back changes nothing: it learns that it lost the job (`Lost`) and
stops. A turn lasts the task's time budget (`deadline`, `past`); it ends "queued", and the task hands over to a
fresh one (`Jobs.task_run`), so other work gets the worker in between. Messages are acknowledged when a worker
takes them (loopsync.work): a task lost with its worker or with Redis is made up for by `Jobs.sweep`, which the beat
runs every minute.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Model, Q
from django.utils import timezone

from loopsync import work

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
FINISHED = frozenset({DONE, FAILED})
TASK_BUDGET_SECONDS = 60  # then the task hands over to a fresh one (CELERY_TASK_SOFT_TIME_LIMIT is 120)
QUIET = timedelta(minutes=1)  # a queued job just started (or handed over) has its task on the way for this long
SWEPT_AT_ONCE = 100


class Lost(Exception):
    """Another worker took this job over (ours was given up on): stop, saving nothing more."""


def deadline(budget_seconds: float | None) -> datetime | None:
    """When a turn of `budget_seconds` ends (None: it runs to the end)."""
    return None if budget_seconds is None else timezone.now() + timedelta(seconds=budget_seconds)


def past(at: datetime | None) -> bool:
    """The turn's time is spent: save where the job is, end it "queued", and let a fresh task go on."""
    return at is not None and timezone.now() >= at


@dataclass(frozen=True)
class Jobs:
    """The jobs of one model, run by the task named `task` (a name in loopsync.work)."""

    model: type[Model]
    task: str
    stale_after: timedelta  # a running job whose heartbeat is older lost its worker: the lease
    label: str  # "Stripe sync": how the log names one

    def claim(self, job_id: int) -> uuid.UUID | None:
        """Take the job for a turn: queued, or running with a stale heartbeat. The claim id every save names;
        None when it is not to be taken (another worker holds it, or it is finished)."""
        now, claim = timezone.now(), uuid.uuid4()
        claimable = Q(status=QUEUED) | Q(status=RUNNING, heartbeat_at__lte=now - self.stale_after)
        taken = self.model._default_manager.filter(claimable, pk=job_id).update(
            status=RUNNING, heartbeat_at=now, claim=claim
        )
        return claim if taken == 1 else None

    def save(
        self, job_id: int, claim: uuid.UUID | None, *, status: str | None = None, error: str = "", **values: Any
    ) -> None:
        """Save `values` (where the job is) and beat its heartbeat, only while `claim` is still the job's; with a
        `status`, also that and its `error` (shown on the job's page): running, or a turn's end, queued (taken
        up again by a fresh task or the sweep), done or failed. Raises Lost when another worker holds the job."""
        now = timezone.now()
        if status is not None:
            values.update(status=status, last_error=error[:2000], finished_at=now if status in FINISHED else None)
        saved = self.model._default_manager.filter(pk=job_id, claim=claim).update(**values, heartbeat_at=now)
        if saved != 1:
            raise Lost

    def sweep(self) -> int:
        """Start again the jobs whose task was lost: queued ones nobody took, running ones whose worker died.
        How many were sent."""
        now = timezone.now()
        quiet = now - QUIET
        due = self.model._default_manager.filter(
            Q(status=QUEUED, heartbeat_at__lte=quiet)
            | Q(status=QUEUED, heartbeat_at__isnull=True, created_at__lte=quiet)
            | Q(status=RUNNING, heartbeat_at__lte=now - self.stale_after)
        ).values_list("pk", flat=True)[:SWEPT_AT_ONCE]
        for job_id in due:
            work.enqueue(self.task, job_id)
        return len(due)

    def task_run(self, job_id: int, turn: Callable[[], str]) -> str:
        """A job's task: one turn (`turn` runs the job for TASK_BUDGET_SECONDS and returns its status); a turn
        that ended "queued" hands over to a fresh task. An error that can heal ends the task cleanly
        (work.guarded): the heartbeat goes stale, and the sweep resumes the job from where it saved."""
        status = work.guarded(f"{self.label} {job_id}", turn, default=RUNNING)
        if status == QUEUED:
            work.enqueue(self.task, job_id)
        return status
