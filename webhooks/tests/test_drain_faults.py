"""The pipeline's drains under contention and faults: concurrent batches over shared contacts, a release that
must not fail, temporary errors in every task, duplicates that leave no database error, and one log line per
broker outage."""

import json
import logging
import random
import threading
import time

import psycopg
import pytest
from django.db import connection, connections
from django.utils import timezone

from accounts.tasks import check_sender_domain
from conftest import fixture_json, sign
from contacts.models import Contact
from loops.models import Event, LoopRun
from loops.services import runs
from loops.tasks import advance_due_runs, drain_emails, drain_runs, sweep_emails
from loopsync import work
from webhooks.models import Delivery
from webhooks.services import processing, receiving
from webhooks.tasks import (
    drain_deliveries,
    process_delivery,
    run_stripe_sync,
    sweep_deliveries,
    sweep_stripe_syncs,
)

FAILED = "pay/invoice.payment_failed.json"


def payment_failed(event_id: str, email: str, customer_id: str) -> str:
    payload = fixture_json(FAILED)
    payload["id"] = event_id
    invoice = payload["data"]["object"]
    invoice["id"] = f"in_{event_id}"
    invoice["customer_email"] = email
    invoice["customer"] = customer_id
    return json.dumps(payload)


def store(endpoint, body: str) -> receiving.Received:
    return receiving.delivery_receive(endpoint_uuid=endpoint.uuid, body=body.encode(), signature=sign(body))


def _stat(name: str) -> int:
    """A counter of this database in pg_stat_database, with the pending statistics of every backend flushed."""
    with psycopg.connect(**_dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(f"SELECT {name} FROM pg_stat_database WHERE datname = current_database()").fetchone()  # noqa: S608 - a fixed column name
        return row[0]


def _dsn() -> dict:
    settings = connection.settings_dict
    return {
        "dbname": settings["NAME"],
        "user": settings["USER"],
        "host": settings["HOST"] or "127.0.0.1",
        "port": settings["PORT"] or 5432,
        "password": settings["PASSWORD"] or None,
    }


def _flush_stats() -> None:
    """Each backend reports its counters when it goes idle, at most once a second unless asked to now."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_four_concurrent_drains_over_shared_contacts_never_deadlock_and_spend_one_attempt_each(
    postgres, redis_broker, tasks_published, endpoint, make_loop
):
    make_loop(endpoint.team)  # "Stripe - Payment Failed": every event starts or wakes runs, which lock too
    pool = [(f"shared{n}@example.org", f"cus_shared{n}") for n in range(6)]
    rng = random.Random(11)
    for n in range(600):
        email, customer = rng.choice(pool)
        assert store(endpoint, payment_failed(f"evt_shared_{n}", email, customer)).status == "queued"
    deadlocks_before = _stat("deadlocks")
    errors: list[BaseException] = []
    start = threading.Barrier(5)

    def drain_deliveries_here() -> None:
        try:
            start.wait()
            # Until every delivery is done: a batch in another drain (the session's Celery worker, when an
            # earlier test started it, takes this queue's wake-ups too) may yet give rows back.
            while Delivery.objects.exclude(status=Delivery.Status.PROCESSED).exists():
                if not processing.deliveries_drain(batch_size=20, budget_seconds=60):
                    time.sleep(0.05)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            _flush_stats()
            connections.close_all()

    def drain_runs_here() -> None:
        try:
            start.wait()
            for _ in range(30):
                runs.runs_drain(batch_size=20, budget_seconds=60)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            _flush_stats()
            connections.close_all()

    threads = [threading.Thread(target=drain_deliveries_here) for _ in range(4)]
    threads.append(threading.Thread(target=drain_runs_here))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors
    _flush_stats()
    assert _stat("deadlocks") == deadlocks_before
    assert Delivery.objects.exclude(status=Delivery.Status.PROCESSED).count() == 0
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {1}
    assert Contact.objects.filter(team=endpoint.team).count() == len(pool)
    assert Event.objects.filter(team=endpoint.team).count() == 600


def _no_customer(event_id, email):
    body = json.loads(payment_failed(event_id, email, "cus_x"))
    body["data"]["object"]["customer"] = None
    return json.dumps(body)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_batches_creating_the_same_contacts_with_and_without_customers_never_deadlock(
    postgres, tasks_published, endpoint
):
    """One batch's events carry Stripe customers (in the reverse order of their emails), the other's none: both
    create the same new contacts, and neither waits on the other in a circle."""
    before = _stat("deadlocks")
    for r in range(15):
        emails = [f"r{r}-{chr(97 + n)}@example.org" for n in range(8)]
        for n, email in enumerate(emails):
            store(endpoint, payment_failed(f"evt_a_{r}_{n}", email, f"cus_{r}_{chr(122 - n)}"))
        for n, email in enumerate(emails):
            store(endpoint, _no_customer(f"evt_b_{r}_{n}", email))
        a, b = processing.deliveries_claim(limit=8), processing.deliveries_claim(limit=8)
        barrier = threading.Barrier(2)

        def run(batch, barrier=barrier):
            try:
                barrier.wait()  # both batches start together
                processing._process(batch)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=run, args=(x,)) for x in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        while processing.deliveries_drain():
            pass
    _flush_stats()
    assert _stat("deadlocks") == before
    assert not Delivery.objects.exclude(status=Delivery.Status.PROCESSED).exists()


def _runs(endpoint, make_loop, count: int) -> list[int]:
    """`count` runs of "Stripe - Payment Failed", each of its own contact, as the webhooks start them."""
    make_loop(endpoint.team)
    for n in range(count):
        store(endpoint, payment_failed(f"evt_run_{n}", f"run{n}@example.org", f"cus_run{n}"))
    while processing.deliveries_drain():
        pass
    return sorted(LoopRun.objects.values_list("id", flat=True))


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_release_that_meets_a_transaction_holding_its_runs_waits_for_it_and_puts_every_run_back(
    postgres, tasks_published, endpoint, make_loop
):
    """A drain's transaction (runs_wake_waiting) holds one run of the batch and then asks for another: the
    release must not hold the second while it waits for the first, or the two deadlock, the release fails
    and the whole batch keeps its five-minute claim."""
    first, second = _runs(endpoint, make_loop, 2)
    assert runs.runs_claim(limit=10) == [first, second]
    table = LoopRun._meta.db_table
    with psycopg.connect(**_dsn()) as other:
        other.execute(f"UPDATE {table} SET updated_at = now() WHERE id = %s", [second])  # noqa: S608 - fixed table
        released: list[int] = []
        releasing = threading.Thread(
            target=lambda: (released.append(runs.runs_release(run_ids=[first, second], due_at=timezone.now())),
                            connections.close_all())
        )  # fmt: skip
        releasing.start()
        releasing.join(timeout=0.5)  # the release now waits for `second`
        other.execute(f"UPDATE {table} SET updated_at = now() WHERE id = %s", [first])  # noqa: S608
        other.commit()
        releasing.join(timeout=30)
    assert released == [2]
    assert LoopRun.objects.filter(next_due_at__lte=timezone.now()).count() == 2


@pytest.fixture
def dead_connection():
    """This thread's database connection, killed by the server the way a restart or failover kills it."""

    def kill() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        with psycopg.connect(**_dsn(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])

    yield kill
    connection.close()


@pytest.mark.services
@pytest.mark.parametrize(
    ("task", "args"),
    [
        (advance_due_runs, ()),
        (drain_runs, ()),
        (drain_emails, ()),
        (sweep_emails, ()),
        (drain_deliveries, ()),
        (process_delivery, (1,)),
        (sweep_deliveries, ()),
        (run_stripe_sync, (1,)),
        (sweep_stripe_syncs, ()),
        (check_sender_domain, (1,)),
    ],
    ids=lambda t: t.name.rsplit(".")[-1] if hasattr(t, "name") else "",
)
@pytest.mark.django_db(transaction=True)
def test_every_task_ends_cleanly_on_a_temporary_database_error(
    postgres, tasks_published, dead_connection, caplog, task, args
):
    dead_connection()
    with caplog.at_level(logging.WARNING):
        result = task.apply(args=args)
    assert result.successful(), result.traceback
    stopped = [r for r in caplog.records if "temporary error" in r.getMessage()]
    assert len(stopped) == 1 and stopped[0].exc_info is None  # one line, no traceback


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_duplicate_webhook_leaves_no_error_in_the_database(postgres, tasks_published, endpoint):
    body = payment_failed("evt_twice", "twice@example.org", "cus_twice")
    assert store(endpoint, body).status == "queued"
    _flush_stats()
    rollbacks = _stat("xact_rollback")
    for _ in range(10):
        assert store(endpoint, body).status == "duplicate"
    _flush_stats()
    assert _stat("xact_rollback") == rollbacks  # a failed INSERT is a rolled-back transaction, and an ERROR logged
    assert Delivery.objects.count() == 1


@pytest.mark.django_db
def test_a_broker_outage_is_logged_once_however_many_webhooks_arrive(
    endpoint, tasks_published, caplog, django_capture_on_commit_callbacks, settings, monkeypatch
):
    from conftest import free_port

    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    monkeypatch.setattr(work.broker_outage, "down", False)
    with caplog.at_level(logging.DEBUG, logger="loopsync.work"), django_capture_on_commit_callbacks(execute=True):
        for n in range(20):
            assert store(endpoint, payment_failed(f"evt_down_{n}", "down@example.org", "cus_down")).status == "queued"
    work.wakes_flush()  # the receive path's wake-ups go out from a thread of this process
    warnings = [r for r in caplog.records if r.name == "loopsync.work" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "unavailable" in warnings[0].getMessage()
    assert Delivery.objects.filter(status=Delivery.Status.RECEIVED).count() == 20  # kept, for the sweep


@pytest.mark.services
@pytest.mark.django_db
def test_the_broker_coming_back_is_logged_and_the_next_outage_warns_again(
    redis_broker, endpoint, tasks_published, caplog, monkeypatch
):
    monkeypatch.setattr(work.broker_outage, "down", False)
    with caplog.at_level(logging.INFO, logger="loopsync.work"):
        work.broker_outage.failed(ConnectionError("gone"))
        work.broker_outage.failed(ConnectionError("still gone"))
        assert work.enqueue(work.SWEEP_EMAILS)  # the real broker answers
        work.broker_outage.failed(ConnectionError("gone again"))
    messages = [(r.levelname, r.getMessage().split(";")[0]) for r in caplog.records if r.name == "loopsync.work"]
    assert messages == [
        ("WARNING", "The broker (Redis) unavailable"),
        ("INFO", "The broker (Redis) is back"),
        ("WARNING", "The broker (Redis) unavailable"),
    ]
