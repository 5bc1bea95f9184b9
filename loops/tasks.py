import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError, OperationalError

from loopsync.wakeup import wake_clear

from . import runs, sending
from .services import runs_wake

logger = logging.getLogger(__name__)

# Every task has CELERY_TASK_SOFT_TIME_LIMIT and CELERY_TASK_TIME_LIMIT (settings). A drain stopped by
# the soft limit has released what it had claimed by the time it gets here: it hands the rest to a
# fresh task and ends cleanly (a failing task would only be logged, then retried by nobody).
TIME_LIMIT_REACHED = "%s reached the task time limit (CELERY_TASK_SOFT_TIME_LIMIT); another task takes over"


@shared_task(acks_late=True)
def drain_runs() -> int:
    wake_clear("runs")  # before looking: a run started from now on wakes another drain
    try:
        return runs.runs_drain()
    except (OperationalError, InterfaceError) as exc:
        logger.warning("Advancing runs stopped on a temporary error; the beat task resumes it: %s", exc)
        return 0
    except SoftTimeLimitExceeded:
        logger.warning(TIME_LIMIT_REACHED, "Advancing runs")
        runs_wake()
        return 0


@shared_task(acks_late=True)
def drain_emails() -> int:
    wake_clear("emails")
    try:
        return sending.emails_drain()
    except SoftTimeLimitExceeded:
        logger.warning(TIME_LIMIT_REACHED, "Sending emails")
        sending.emails_wake()
        return 0


@shared_task
def advance_due_runs() -> int:
    try:
        return runs.runs_advance_due()
    except SoftTimeLimitExceeded:
        logger.warning(TIME_LIMIT_REACHED, "Advancing due runs")
        runs_wake()
        return 0


@shared_task
def sweep_emails() -> dict[str, int]:
    return sending.emails_sweep()
