"""Coalesced wake-ups: many producers, one pending worker task.

A web request or a service that leaves work in the database calls `wake(task, key)`. The task is
published only when no wake-up for that key is pending (a Redis `SET NX` with an expiry), and the task
calls `wake_clear(key)` when it starts, before it looks for work. So work committed before a `wake`
is always seen by a task that starts after it, while a burst of a thousand webhooks publishes a
handful of tasks instead of a thousand. The database rows stay the truth: if Redis or the broker is
down, nothing is lost, the periodic sweeps wake the workers later.
"""

import logging
from functools import cache

import redis
from celery import Task
from django.conf import settings
from kombu.exceptions import OperationalError as BrokerError

logger = logging.getLogger(__name__)

PENDING_TTL_MS = 10_000  # a wake-up whose task never started (lost message) stops blocking after this


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)


def _redis() -> redis.Redis | None:
    """Only a Redis broker can hold the pending mark; with another broker every wake publishes."""
    from loopsync.celery import app

    url = settings.CELERY_BROKER_URL
    if app.conf.task_always_eager or not url.startswith(("redis://", "rediss://")):
        return None
    return _client(url)


def _key(key: str) -> str:
    from loopsync.celery import app

    return f"loopsync:wake:{app.conf.task_default_queue}:{key}"


def wake(task: Task, key: str) -> bool:
    """Publish `task` unless a wake-up for `key` is already pending. True when published."""
    client = _redis()
    if client is not None:
        try:
            if not client.set(_key(key), b"1", nx=True, px=PENDING_TTL_MS):
                return False
        except redis.RedisError as exc:
            logger.warning("Redis unavailable; %s will be woken by the sweeper: %s", key, exc)
            return False
    try:
        task.delay()
    except BrokerError as exc:
        logger.warning("Broker unavailable; %s will be woken by the sweeper: %s", key, exc)
        wake_clear(key)
        return False
    return True


def wake_clear(key: str) -> None:
    """Called by the woken task as it starts: wake-ups from now on publish again."""
    client = _redis()
    if client is None:
        return
    try:
        client.delete(_key(key))
    except redis.RedisError as exc:
        logger.warning("Redis unavailable while clearing wake-up %s: %s", key, exc)
