import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from loopsync.wakeup import wake_clear

from . import processing
from .receiving import deliveries_wake

logger = logging.getLogger(__name__)

# Every task has CELERY_TASK_SOFT_TIME_LIMIT and CELERY_TASK_TIME_LIMIT (settings). A drain stopped by
# the soft limit has released its batch by the time it gets here (processing._process).
TIME_LIMIT_REACHED = "%s reached the task time limit (CELERY_TASK_SOFT_TIME_LIMIT); released for a retry"


@shared_task(acks_late=True)
def drain_deliveries() -> int:
    wake_clear("deliveries")  # before looking: a webhook stored from now on wakes another drain
    try:
        return processing.deliveries_drain()
    except processing.TEMPORARY_ERRORS as exc:
        logger.warning("Draining deliveries stopped on a temporary error; the sweep resumes it: %s", exc)
        return 0
    except SoftTimeLimitExceeded:
        logger.warning(TIME_LIMIT_REACHED, "Draining deliveries")
        deliveries_wake()
        return 0


@shared_task(acks_late=True)
def process_delivery(delivery_id: int) -> None:
    try:
        processing.delivery_process(delivery_id=delivery_id)
    except processing.TEMPORARY_ERRORS as exc:
        logger.warning("Delivery %s hit a temporary error; released for a retry: %s", delivery_id, exc)
    except SoftTimeLimitExceeded:
        logger.warning(TIME_LIMIT_REACHED, f"Delivery {delivery_id}")


@shared_task
def sweep_deliveries() -> int:
    return processing.deliveries_sweep()
