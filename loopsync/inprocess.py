"""Development mode without a broker: the periodic tasks that Celery beat runs in production (timers and waits
that are due, deliveries, emails, Stripe syncs and contact imports whose wake-up was lost) run in a thread of the
web process instead, so `make run` behaves like production, only slower to scale."""

import logging
import threading

from django.db import close_old_connections

from loopsync import work

logger = logging.getLogger(__name__)

INTERVAL_SECONDS = 15.0
_started = threading.Event()


PERIODIC = (
    work.ADVANCE_DUE_RUNS,
    work.SWEEP_DELIVERIES,
    work.SWEEP_EMAILS,
    work.SWEEP_STRIPE_SYNCS,
    work.SWEEP_CONTACT_IMPORTS,
)


def _tick() -> None:
    for name in PERIODIC:  # by name, as beat sends them; without a broker they run here (work.enqueue)
        try:
            work.enqueue(name)
        except Exception:
            logger.exception("Periodic %s failed; it runs again in %s s", name, INTERVAL_SECONDS)
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
