"""Requests per second per team, counted in Redis so every web worker shares one count.

A fixed one-second window: INCR `ratelimit:<team>:<second>` (expires after 2 s). Without Redis (the
zero-setup development default) the count is per process. If Redis is down, requests are let through
and a warning is logged: the API stays up, unthrottled, rather than failing every call.
"""

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quota:
    allowed: bool
    limit: int
    remaining: int


clock = time.time  # the tests fix it
_client = None
_client_url = None
_lock = threading.Lock()
_local_counts: dict[tuple[int, int], int] = {}


def _redis():
    global _client, _client_url
    url = settings.API_RATE_LIMIT_REDIS_URL
    if _client is None or _client_url != url:
        import redis

        _client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        _client_url = url
    return _client


def hit(team_id: int, *, limit: int | None = None, now: float | None = None) -> Quota:
    limit = limit or settings.API_RATE_LIMIT
    second = int(now if now is not None else clock())
    if settings.API_RATE_LIMIT_REDIS_URL:
        key = f"ratelimit:{team_id}:{second}"
        try:
            pipe = _redis().pipeline()
            pipe.incr(key)
            pipe.expire(key, 2)
            count = pipe.execute()[0]
        except Exception as exc:  # noqa: BLE001 - any Redis failure: let the request through
            logger.warning("Rate limit not counted (Redis: %s)", type(exc).__name__)
            return Quota(allowed=True, limit=limit, remaining=limit)
    else:
        with _lock:
            for stale in [k for k in _local_counts if k[1] < second]:
                del _local_counts[stale]
            count = _local_counts[(team_id, second)] = _local_counts.get((team_id, second), 0) + 1
    return Quota(allowed=count <= limit, limit=limit, remaining=max(0, limit - count))
