"""Thin tasks: each drains or sweeps through a service. Their names are in loopsync.work.

Every task has CELERY_TASK_SOFT_TIME_LIMIT and CELERY_TASK_TIME_LIMIT (settings). A drain stopped by the
soft limit, or by a temporary error, has released what it had claimed by the time `work.guarded` sees it.
"""

from celery import shared_task

from loopsync import work

from .services import runs, sending


def _wake_runs() -> None:
    work.wake(work.DRAIN_RUNS)


@shared_task(name=work.DRAIN_RUNS)
def drain_runs() -> int:
    work.wake_clear(work.DRAIN_RUNS)  # before looking: a run started from now on wakes another drain
    return work.guarded("Advancing runs", runs.runs_drain, default=0, hand_over=_wake_runs)


@shared_task(name=work.DRAIN_EMAILS)
def drain_emails() -> int:
    work.wake_clear(work.DRAIN_EMAILS)
    return work.guarded(
        "Sending emails", sending.emails_drain, default=0, hand_over=lambda: work.wake(work.DRAIN_EMAILS)
    )


@shared_task(name=work.ADVANCE_DUE_RUNS)
def advance_due_runs() -> int:
    return work.guarded("Advancing due runs", runs.runs_advance_due, default=0, hand_over=_wake_runs)


@shared_task(name=work.SWEEP_EMAILS)
def sweep_emails() -> dict[str, int]:
    return work.guarded("Sweeping emails", sending.emails_sweep, default={})
