"""A real worker (`make worker`: prefork, a subprocess) survives its Redis being killed in the middle of work.

The test runs its own redis-server, never the shared one: it SIGKILLs it while the worker drains deliveries,
starts it again on the same port, and checks that the same worker process reconnects and drains everything,
what was stored before the crash and what arrived after it.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from django.db import connection
from django.utils import timezone

from conftest import fixture_text, free_port, service_missing, sign
from loopsync.celery import app as celery_app
from webhooks.models import Delivery
from webhooks.services.processing import deliveries_sweep
from webhooks.services.receiving import delivery_receive

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
CELERY = Path(sys.executable).with_name("celery")
BEFORE, AFTER = 300, 100  # deliveries stored before the crash (the worker is busy with them) and after it
FAILED = "pay/invoice.payment_failed.json"


class RedisServer:
    """A redis-server of this test only, on a fixed port, that can be killed and started again."""

    def __init__(self, binary: str, port: int):
        self.binary, self.port, self.proc = binary, port, None
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise AssertionError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)
            finally:
                client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def own_redis():
    binary = shutil.which("redis-server")
    if binary is None:
        service_missing("needs the redis-server binary, to run a Redis this test can kill")
    server = RedisServer(binary, free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def publish_to(settings):
    """Point this process's wake-ups (the Redis mark and the publishing) at the test's own Redis."""

    def point(url: str | None) -> None:
        if url is not None:
            settings.CELERY_BROKER_URL = url  # loopsync.work reads the mark's Redis from here
        celery_app.conf.broker_write_url = url
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    yield point
    point(None)


def _database_url() -> str:
    db = connection.settings_dict
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    return f"postgres://{user}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _start_worker(broker_url: str, tmp_path: Path) -> subprocess.Popen:
    queue = celery_app.conf.task_default_queue  # this test run's queue (conftest.pytest_configure)
    env = os.environ | {
        "DATABASE_URL": _database_url(),  # the test database: the worker sees the rows this test commits
        "CELERY_BROKER_URL": broker_url,
        "CELERY_TASK_DEFAULT_QUEUE": queue,  # the wake-up marks are named after the queue too
        "CONN_MAX_AGE": "0",
        "DEBUG": "true",
        "TMPDIR": str(tmp_path),  # what the worker leaves behind (kombu's dump of messages it could not restore)
    }
    env.pop("REDIS_URL", None)
    command = [str(CELERY), "-A", "loopsync", "worker", "--loglevel=INFO", "--pool=prefork", "--concurrency=2"]
    command += ["-Q", queue, "-n", f"outage-{os.getpid()}@%h"]
    with (tmp_path / "worker.log").open("wb") as out:  # the worker keeps its own copy of the file descriptor
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop_worker(proc: subprocess.Popen) -> None:
    """Its whole process group: the prefork children too, so no connection to the test database is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _wait(condition, proc: subprocess.Popen, log: Path, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        if value := condition():
            return value
        if proc.poll() is not None:
            pytest.fail(f"the worker exited (code {proc.returncode}) while waiting for {what}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: still not true after {timeout} s\n{_tail(log)}")
        time.sleep(0.1)


def _log(log: Path) -> str:
    return log.read_text(errors="replace")


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(_log(log).splitlines()[-lines:])


def _store(endpoint, numbers: range) -> None:
    """Deliveries received through the webhook's service: verified, stored, a worker woken."""
    template = json.loads(fixture_text(FAILED))
    for number in numbers:
        payload = template | {"id": f"evt_outage_{number}"}
        payload["data"] = {"object": template["data"]["object"] | {"customer_email": f"c{number}@example.org"}}
        body = json.dumps(payload)
        received = delivery_receive(endpoint_uuid=endpoint.uuid, body=body.encode(), signature=sign(body))
        assert received.status == "queued"


def _processed() -> int:
    return Delivery.objects.filter(status=Delivery.Status.PROCESSED).count()


def test_worker_survives_redis_killed_mid_work_and_drains_everything(
    postgres, endpoint, own_redis, publish_to, tmp_path
):
    publish_to(own_redis.url)
    log = tmp_path / "worker.log"
    worker = _start_worker(own_redis.url, tmp_path)
    try:
        _wait(lambda: " ready." in _log(log), worker, log, 30, "the worker to start")
        _store(endpoint, range(BEFORE))

        # Killed while the worker is in the middle of the batches.
        _wait(lambda: _processed() >= 50, worker, log, 30, "the worker to be busy")
        assert _processed() < BEFORE, "the worker was done before Redis went: raise BEFORE"
        own_redis.kill()
        time.sleep(4)  # the worker finds the broker gone (the reported exit came about 2 s after the crash)
        assert worker.poll() is None, f"the worker exited (code {worker.returncode}) with Redis:\n{_tail(log)}"
        own_redis.start()  # empty: the messages and the wake-up marks are gone with it

        # The same process connects again (the broker's connection retry), and goes on consuming.
        _wait(lambda: _log(log).count("Connected to redis://") >= 2, worker, log, 30, "the worker to reconnect")
        _store(endpoint, range(BEFORE, BEFORE + AFTER))  # woken for real, on the new Redis
        # What was stored before lost its wake-ups with Redis; the periodic sweep (beat, not running here)
        # wakes a worker for it once it is due: made due now, and the sweep run as beat would.
        Delivery.objects.filter(status=Delivery.Status.RECEIVED).update(
            next_attempt_at=timezone.now() - timedelta(seconds=1)
        )
        deliveries_sweep()

        _wait(lambda: _processed() == BEFORE + AFTER, worker, log, 40, "every delivery to be processed")
        assert not Delivery.objects.exclude(status=Delivery.Status.PROCESSED).exists()
        time.sleep(1)  # a worker that is going down finishes its running tasks first: give it the time to exit
        assert worker.poll() is None, f"the worker exited (code {worker.returncode}):\n{_tail(log)}"
        reconnected = _log(log).split("Connected to redis://")[2]
        assert "webhooks.tasks.drain_deliveries[" in reconnected, "nothing was received after the reconnection"
        assert "Unrecoverable error" not in _log(log), _tail(log)
    finally:
        _stop_worker(worker)
