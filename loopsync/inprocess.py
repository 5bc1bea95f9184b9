"""Development mode without a broker: the periodic tasks that Celery beat runs in production
(timers and waits that are due, deliveries, emails and Stripe syncs whose wake-up was lost) run in a thread of the
web process instead, so `make run` behaves like production, only slower to scale."""

import logging
import threading

from django.db import close_old_connections

logger = logging.getLogger(__name__)

INTERVAL_SECONDS = 15.0
_started = threading.Event()


def _tick() -> None:
    from loops.runs import runs_advance_due
    from loops.sending import emails_sweep
    from webhooks.processing import deliveries_sweep
    from webhooks.syncs import syncs_sweep

    for job in (runs_advance_due, deliveries_sweep, emails_sweep, syncs_sweep):
        try:
            job()
        except Exception:
            logger.exception("Periodic %s failed; it runs again in %s s", job.__name__, INTERVAL_SECONDS)
        finally:
            close_old_connections()


def _loop(stop: threading.Event) -> None:
    while not stop.wait(INTERVAL_SECONDS):
        _tick()


def start() -> threading.Event | None:
    """Start the periodic thread once per process. Returns the event that stops it."""
    if _started.is_set():
        return None
    _started.set()
    stop = threading.Event()
    threading.Thread(target=_loop, args=(stop,), name="loopsync-periodic", daemon=True).start()
    return stop
