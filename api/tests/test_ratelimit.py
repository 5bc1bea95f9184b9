"""The rate limit is counted in Redis, so every web worker shares one count per team and second."""

import time

import pytest
import redis

from api import ratelimit


@pytest.fixture
def redis_limit(redis_broker, settings):
    settings.API_RATE_LIMIT = 5
    settings.API_RATE_LIMIT_REDIS_URL = redis_broker
    return redis.Redis.from_url(redis_broker)


def test_two_workers_share_one_count(redis_limit):
    team_id = 900_000_000 + int(time.time() * 1000) % 1_000_000  # no other test's team
    now = float(int(time.time()))
    first = [ratelimit.hit(team_id, now=now) for _ in range(3)]
    ratelimit._client = None  # another web worker: a new connection, the same Redis
    second = [ratelimit.hit(team_id, now=now) for _ in range(3)]
    assert [q.remaining for q in first + second] == [4, 3, 2, 1, 0, 0]
    assert [q.allowed for q in first + second] == [True] * 5 + [False]
    assert ratelimit.hit(team_id, now=now + 1).remaining == 4  # the next second starts afresh
    assert redis_limit.ttl(f"ratelimit:{team_id}:{int(now)}") in {-2, 1, 2}  # expiring (or gone): nothing piles up


def test_redis_down_lets_requests_through(settings):
    settings.API_RATE_LIMIT = 1
    settings.API_RATE_LIMIT_REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    ratelimit._client = None
    try:
        assert all(ratelimit.hit(1).allowed for _ in range(3))
    finally:
        ratelimit._client = None
