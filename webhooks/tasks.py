"""Thin tasks: each loads by id (or drains) and calls a service. Their names are in loopsync.work."""

import logging

from celery import shared_task

from loopsync import work

from .services import processing, syncs
from .stripe_api import StripeUnavailable

logger = logging.getLogger(__name__)


@shared_task(name=work.DRAIN_DELIVERIES)
def drain_deliveries() -> int:
    work.wake_clear(work.DRAIN_DELIVERIES)  # before looking: a webhook stored from now on wakes another drain
    return work.guarded(
        "Draining deliveries",
        processing.deliveries_drain,
        default=0,
        hand_over=lambda: work.wake(work.DRAIN_DELIVERIES),
    )


@shared_task(name=work.PROCESS_DELIVERY)
def process_delivery(delivery_id: int) -> None:
    # Its claim was released by the service on any error that can heal; the sweep takes it again.
    work.guarded(f"Delivery {delivery_id}", lambda: processing.delivery_process(delivery_id=delivery_id), default=None)


@shared_task(name=work.SWEEP_DELIVERIES)
def sweep_deliveries() -> int:
    return work.guarded("Sweeping deliveries", processing.deliveries_sweep, default=0)


@shared_task(name=work.RUN_STRIPE_SYNC)
def run_stripe_sync(sync_id: int) -> str:
    """An import or catch-up for a time budget; then a fresh task takes over from where it stopped."""
    try:
        return syncs.SYNCS.task_run(
            sync_id, lambda: syncs.sync_run(sync_id=sync_id, budget_seconds=syncs.TASK_BUDGET_SECONDS)
        )
    except StripeUnavailable as exc:  # recorded on the sync: its heartbeat goes stale, and the sweep resumes it
        logger.warning("Stripe sync %s waits for Stripe; the sweep resumes it: %s", sync_id, exc)
        return "running"


@shared_task(name=work.SWEEP_STRIPE_SYNCS)
def sweep_stripe_syncs() -> int:
    return work.guarded("Sweeping Stripe syncs", syncs.syncs_sweep, default=0)
