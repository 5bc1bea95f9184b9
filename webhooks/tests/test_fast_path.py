"""The production receive path: answered by the WSGI application before Django (webhooks/wsgi.py), with each
process's endpoint cache and coalesced wake-ups. The rest of the suite posts through it too (conftest's
`client`); here, what is particular to it."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

from conftest import SECRET, fixture_text, free_port, livemode, sign
from loopsync import work
from webhooks.models import Delivery, Endpoint
from webhooks.services import endpoint_secret_save, endpoint_set_enabled

FAILED = "pay/invoice.payment_failed.json"
ROOT = Path(__file__).resolve().parents[2]


def event(n: int) -> str:
    payload = json.loads(fixture_text(FAILED))
    payload["id"] = f"evt_fast_{n}"
    return json.dumps(payload)


def post(client, endpoint, body: str, **extra):
    return client.post(
        endpoint.get_receive_path(),
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(body),
        **extra,
    )


@pytest.mark.django_db
def test_webhooks_are_answered_before_django_with_the_views_answers(endpoint, client, django_view_client):
    """Each answer the view gives, the fast path gives too; only the fast path skips the middleware (no CSP)."""
    cases = [
        ("queued", event(1), sign(event(1)), endpoint.get_receive_path()),
        ("duplicate", event(1), sign(event(1)), endpoint.get_receive_path()),
        ("forged", event(2), sign(event(2), "whsec_other"), endpoint.get_receive_path()),
        ("unsigned", event(3), None, endpoint.get_receive_path()),
        ("not JSON", "{", sign("{"), endpoint.get_receive_path()),
        ("unknown endpoint", event(4), sign(event(4)), "/webhooks/stripe/00000000-0000-4000-8000-000000000000/"),
        ("no slash", event(5), sign(event(5)), endpoint.get_receive_path().rstrip("/")),
    ]
    for label, body, signature, path in cases:
        headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature else {}
        fast = client.post(path, data=body, content_type="application/json", **headers)
        if label in {"queued", "no slash"}:  # stored by the fast path: the view stores it again
            Delivery.objects.filter(stripe_event_id=json.loads(body)["id"]).delete()
        view = django_view_client.post(path, data=body, content_type="application/json", **headers)
        assert (fast.status_code, fast.json()) == (view.status_code, view.json()), label
        assert "Content-Security-Policy" not in fast and "Content-Security-Policy" in view, label
        assert fast["Content-Type"] == "application/json" and fast["X-Content-Type-Options"] == "nosniff"
    assert Delivery.objects.filter(stripe_event_id="evt_fast_1").count() == 1
    assert not Delivery.objects.filter(stripe_event_id__in=["evt_fast_2", "evt_fast_3", "evt_fast_4"]).exists()


@pytest.mark.django_db
def test_a_body_over_the_limit_is_a_413_and_nothing_is_read_past_it(endpoint, client, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 100
    response = post(client, endpoint, event(1))
    assert response.status_code == 413 and "100 bytes" in response.json()["error"]
    assert not Delivery.objects.exists()


@pytest.mark.django_db
def test_other_requests_go_to_django(endpoint, client):
    assert client.get(endpoint.get_receive_path()).status_code == 405  # the view's require_POST
    response = client.post("/webhooks/stripe/not-a-uuid/", data="{}", content_type="application/json")
    assert response.status_code == 404 and "Content-Security-Policy" in response


@pytest.mark.django_db
def test_with_ssl_redirect_a_plain_http_webhook_is_still_answered_never_redirected(endpoint, client, settings):
    settings.SECURE_SSL_REDIRECT = True  # Stripe follows no redirect: SECURE_REDIRECT_EXEMPT has the webhook path
    assert post(client, endpoint, event(1)).json() == {"status": "queued"}
    assert client.get("/login/").status_code == 301  # the pages are redirected


@pytest.mark.django_db
def test_an_endpoint_changed_in_another_process_takes_effect_within_the_cache_time(endpoint, client):
    assert post(client, endpoint, event(1)).status_code == 200  # cached in this process now
    Endpoint.objects.filter(id=endpoint.id).update(enabled=False)  # as another process writes it: no signal here
    assert post(client, endpoint, event(2)).status_code == 200  # still cached
    time.sleep(settings.ENDPOINT_CACHE_SECONDS + 0.1)
    assert post(client, endpoint, event(3)).status_code == 404
    assert set(Delivery.objects.values_list("stripe_event_id", flat=True)) == {"evt_fast_1", "evt_fast_2"}


@pytest.mark.django_db
def test_an_endpoint_saved_in_this_process_takes_effect_at_once(endpoint, client):
    assert post(client, endpoint, event(1)).status_code == 200
    endpoint_set_enabled(endpoint=endpoint, enabled=False)
    assert post(client, endpoint, event(2)).status_code == 404
    endpoint_set_enabled(endpoint=endpoint, enabled=True)
    endpoint_secret_save(endpoint=endpoint, secret="whsec_new_secret_0000")
    assert post(client, endpoint, event(3)).status_code == 400  # signed with the old secret
    endpoint.event_settings.filter(event_type="invoice.payment_failed").update(
        enabled=False
    )  # no signal: a bulk update
    endpoint.event_settings.get(event_type="invoice.payment_failed").save()
    body = event(4)
    response = client.post(
        endpoint.get_receive_path(),
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(body, "whsec_new_secret_0000"),
    )
    assert response.json() == {"status": "ignored", "reason": "type_disabled"}


@pytest.mark.django_db
def test_an_endpoint_read_before_a_save_in_this_process_is_not_remembered_after_it(endpoint, monkeypatch):
    """A load that a save overtook (another thread of this process saved while it read) answers its request
    but is not cached: the next request reads the saved endpoint."""
    from webhooks.services import receiving

    real_load = receiving._endpoint_load

    def load_then_a_save_lands(endpoint_uuid):
        loaded = real_load(endpoint_uuid)
        endpoint_set_enabled(endpoint=endpoint, enabled=False)  # forgets the cached endpoints at once
        return loaded

    receiving.endpoints_forget()
    monkeypatch.setattr(receiving, "_endpoint_load", load_then_a_save_lands)
    assert receiving.endpoint_for_receive(endpoint_uuid=endpoint.uuid).id == endpoint.id  # as it was read
    monkeypatch.setattr(receiving, "_endpoint_load", real_load)
    with pytest.raises(receiving.WebhookRejected) as rejected:
        receiving.endpoint_for_receive(endpoint_uuid=endpoint.uuid)
    assert rejected.value.status == 404


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_burst_of_webhooks_costs_a_few_redis_calls_and_still_wakes_a_drain(
    redis_broker, endpoint, client, tasks_published, monkeypatch
):
    from loopsync.celery import app

    broker = redis.Redis.from_url(redis_broker)
    queue = app.conf.task_default_queue  # this test's, which no worker takes (tasks_published)
    broker.delete(queue, work._pending_key(work.DRAIN_DELIVERIES))
    sent = []  # each wake-up is one Redis SET NX (and a publish when none is pending)
    real_wake = work.wake
    monkeypatch.setattr(work, "wake", lambda name: sent.append(name) or real_wake(name))
    started = time.monotonic()
    for n in range(100):
        assert post(client, endpoint, event(n)).json() == {"status": "queued"}
    work.wakes_flush()
    elapsed = time.monotonic() - started
    # One wake-up per WAKE_INTERVAL_SECONDS at most, not one per webhook.
    assert 1 <= len(sent) <= elapsed / work.WAKE_INTERVAL_SECONDS + 2 and len(sent) < 100
    assert broker.llen(queue) == 1  # the drain was woken, once: its mark stays pending until it starts


def _gunicorn(port: int, tmp_path: Path) -> subprocess.Popen:
    db = connection.settings_dict
    user, host, port_ = db["USER"] or "postgres", db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    env = os.environ | {
        "DATABASE_URL": f"postgres://{user}@{host}:{port_}/{db['NAME']}",
        "DEBUG": "true",
        "CONN_MAX_AGE": "0",
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", ""),
    }
    command = [str(Path(sys.executable).parent / "gunicorn"), "loopsync.wsgi:application", "-w", "3"]
    command += ["-b", f"127.0.0.1:{port}", "--log-level", "warning"]
    with (tmp_path / "gunicorn.log").open("wb") as out:
        return subprocess.Popen(  # noqa: S603 - our own command line
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _status(url: str, body: str, secret: str = SECRET) -> int:
    request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
        url, data=body.encode(), headers={"Content-Type": "application/json", "Stripe-Signature": sign(body, secret)}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_every_web_worker_sees_a_disabled_endpoint_and_a_new_secret_within_a_second(
    postgres, team, make_endpoint, tmp_path
):
    endpoint = make_endpoint(team, triggers={"invoice.payment_failed": "failedPayment"})
    port = free_port()
    server = _gunicorn(port, tmp_path)
    url = f"http://127.0.0.1:{port}{endpoint.get_receive_path()}"
    try:
        deadline = time.monotonic() + 30
        while True:  # up, and this endpoint cached by whichever worker answered
            try:
                if _status(url, livemode(event(0))) == 200:
                    break
            except urllib.error.URLError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
            time.sleep(0.2)
        assert {_status(url, livemode(event(n))) for n in range(1, 31)} == {200}  # every worker has it cached
        endpoint_secret_save(endpoint=endpoint, secret="whsec_rotated_000000")
        time.sleep(1)
        assert {_status(url, livemode(event(n))) for n in range(31, 61)} == {400}  # the old secret, everywhere
        assert {_status(url, livemode(event(n)), "whsec_rotated_000000") for n in range(61, 91)} == {200}
        endpoint_set_enabled(endpoint=endpoint, enabled=False)
        time.sleep(1)
        assert {_status(url, livemode(event(n)), "whsec_rotated_000000") for n in range(91, 121)} == {404}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)


@pytest.mark.django_db(transaction=True)
def test_the_insert_is_a_django_query_logged_and_refused_in_a_broken_transaction(endpoint, client, tasks_published):
    """The INSERT runs on psycopg's server-binding cursor, wrapped as Django wraps its own: it shows in the
    query log, and inside a transaction an error has broken it is refused, not run."""
    from django.db import IntegrityError, transaction
    from django.db.transaction import TransactionManagementError
    from django.test.utils import CaptureQueriesContext

    from webhooks.services import receiving

    with CaptureQueriesContext(connection) as queries:
        assert post(client, endpoint, event(40)).status_code == 200
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('INSERT INTO "webhooks_delivery"')]
    assert len(inserts) == 1 and "ON CONFLICT" in inserts[0]
    values = {"team_id": endpoint.team_id, "endpoint_id": endpoint.id, "stripe_event_id": "evt_fast_broken"}
    with transaction.atomic():
        with pytest.raises(IntegrityError), transaction.atomic(savepoint=False), connection.cursor() as cursor:
            cursor.execute("INSERT INTO webhooks_endpoint (id) VALUES (NULL)")
        with pytest.raises(TransactionManagementError):
            receiving._insert(values)
    assert not Delivery.objects.filter(stripe_event_id="evt_fast_broken").exists()


@pytest.mark.django_db
def test_a_host_not_in_allowed_hosts_gets_djangos_400_and_nothing_is_stored(endpoint, client, settings):
    settings.ALLOWED_HOSTS = ["loopsync.example.com"]
    refused = post(client, endpoint, event(41), HTTP_HOST="evil.example")
    assert refused.status_code == 400
    assert not Delivery.objects.filter(stripe_event_id="evt_fast_41").exists()
    assert post(client, endpoint, event(41), HTTP_HOST="", SERVER_NAME="loopsync.example.com").status_code == 400
    assert post(client, endpoint, event(41), HTTP_HOST="loopsync.example.com").status_code == 200
    assert Delivery.objects.filter(stripe_event_id="evt_fast_41").count() == 1


@pytest.mark.django_db
def test_an_unexpected_error_is_a_500_logged_to_django_request(endpoint, client, caplog, monkeypatch):
    from webhooks.services import receiving

    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(receiving, "delivery_receive", broken)
    with caplog.at_level("ERROR", logger="django.request"):
        response = post(client, endpoint, event(42))
    assert response.status_code == 500
    assert response.json() == {"error": "Internal error; the webhook was not stored. Retry later."}
    assert [r.name for r in caplog.records if "Internal Server Error" in r.getMessage()] == ["django.request"]


@pytest.mark.django_db(transaction=True)
def test_a_database_error_on_a_new_connection_is_a_503_without_a_second_try(
    endpoint, client, monkeypatch, tasks_published
):
    """A kept connection that died is tried again once; one opened for this request failing is the database
    being away, and trying again would only double the wait."""
    from django.db import OperationalError

    from webhooks.services import receiving

    if connection.vendor == "sqlite":
        pytest.skip("Django never closes an in-memory SQLite test database: every connection is a kept one")
    calls = []

    def unavailable(**kwargs):
        calls.append(connection.connection is not None)
        raise OperationalError("connection refused")

    connection.close()
    monkeypatch.setattr(receiving, "delivery_receive", unavailable)
    assert post(client, endpoint, event(43)).status_code == 503
    assert len(calls) == 1
    connection.ensure_connection()  # kept from "an earlier request"
    calls.clear()
    assert post(client, endpoint, event(43)).status_code == 503
    assert len(calls) == 2  # the kept one, then a new one


@pytest.mark.django_db(transaction=True)
def test_a_fetched_event_wakes_the_drain_at_once_a_webhook_through_the_coalescer(
    endpoint, client, monkeypatch, tasks_published
):
    """A catch-up runs in a worker, whose prefork child may leave with os._exit before the wake-up thread
    sends what it gathered: its wake-up goes at once. A web process's go through the coalescer."""
    from webhooks.services import delivery_receive_fetched

    gathered, sent = [], []
    monkeypatch.setattr(work, "wake_soon", gathered.append)
    monkeypatch.setattr(work, "wake", lambda name: sent.append(name) or True)
    received = delivery_receive_fetched(endpoint_uuid=endpoint.uuid, payload=json.loads(event(44)))
    assert received.status == "queued"
    assert (gathered, sent) == ([], [work.DRAIN_DELIVERIES])
    sent.clear()
    assert post(client, endpoint, event(45)).status_code == 200
    assert (gathered, sent) == ([work.DRAIN_DELIVERIES], [])
