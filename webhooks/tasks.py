import logging

from celery import shared_task

from . import services

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, max_retries=services.MAX_ATTEMPTS)
def process_delivery(self, delivery_id: int) -> None:
    try:
        services.delivery_process(delivery_id=delivery_id)
    except services.TEMPORARY_ERRORS as exc:
        delay = services.retry_delay(self.request.retries)
        try:
            services.delivery_release(delivery_id=delivery_id, error=f"{type(exc).__name__}: {exc}", retry_in=delay)
        except services.TEMPORARY_ERRORS:
            logger.warning("Could not release delivery %s; its lease will run out and it is swept", delivery_id)
        raise self.retry(exc=exc, countdown=delay.total_seconds()) from exc


@shared_task
def sweep_deliveries() -> int:
    return services.deliveries_sweep()
