import logging

from celery import shared_task

from loopsync.wakeup import wake_clear

from . import processing

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def drain_deliveries() -> int:
    wake_clear("deliveries")  # before looking: a webhook stored from now on wakes another drain
    try:
        return processing.deliveries_drain()
    except processing.TEMPORARY_ERRORS as exc:
        logger.warning("Draining deliveries stopped on a temporary error; the sweep resumes it: %s", exc)
        return 0


@shared_task(acks_late=True)
def process_delivery(delivery_id: int) -> None:
    try:
        processing.delivery_process(delivery_id=delivery_id)
    except processing.TEMPORARY_ERRORS as exc:
        logger.warning("Delivery %s hit a temporary error; released for a retry: %s", delivery_id, exc)


@shared_task
def sweep_deliveries() -> int:
    return processing.deliveries_sweep()
