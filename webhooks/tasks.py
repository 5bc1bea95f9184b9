import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from loopsync.wakeup import wake_clear

from . import processing, syncs
from .receiving import deliveries_wake
from .stripe_api import StripeUnavailable

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


@shared_task(acks_late=True)
def run_stripe_sync(sync_id: int) -> str:
    """An import or catch-up for a time budget; then a fresh task takes over from where it stopped."""
    try:
        status = syncs.sync_run(sync_id=sync_id, budget_seconds=syncs.TASK_BUDGET_SECONDS)
    except StripeUnavailable as exc:
        logger.warning("Stripe sync %s waits for Stripe; the sweep resumes it: %s", sync_id, exc)
        return "running"
    except SoftTimeLimitExceeded:
        logger.warning(TIME_LIMIT_REACHED, f"Stripe sync {sync_id}")
        return "running"  # its heartbeat goes stale, and the sweep resumes it from its last page
    if status == "queued":
        run_stripe_sync.delay(sync_id)
    return status


@shared_task
def sweep_stripe_syncs() -> int:
    return syncs.syncs_sweep()
