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
