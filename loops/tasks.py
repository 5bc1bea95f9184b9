import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from loopsync.wakeup import wake_clear

from . import runs, sending

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def drain_runs() -> int:
    wake_clear("runs")  # before looking: a run started from now on wakes another drain
    try:
        return runs.runs_drain()
    except (OperationalError, InterfaceError) as exc:
        logger.warning("Advancing runs stopped on a temporary error; the beat task resumes it: %s", exc)
        return 0


@shared_task(acks_late=True)
def drain_emails() -> int:
    wake_clear("emails")
    return sending.emails_drain()


@shared_task
def advance_due_runs() -> int:
    return runs.runs_advance_due()


@shared_task
def sweep_emails() -> dict[str, int]:
    return sending.emails_sweep()
