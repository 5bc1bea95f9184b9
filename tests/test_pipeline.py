"""The whole path over HTTP, with a real Celery worker consuming from Redis and PostgreSQL behind it."""

import json
import threading
import time
import urllib.request
from datetime import timedelta

import pytest
from django.utils import timezone

from conftest import FIXTURE_OF_TYPE, LIFECYCLE_TYPES, fixture_text, sign
from contacts.models import Contact
from loops.models import Event
from loopsync import work
from loopsync.celery import app as celery_app
from tests.fake_stripe import customer
from webhooks.models import Delivery, Endpoint
from webhooks.services.processing import deliveries_sweep
from webhooks.stripe_events import SUPPORTED_EVENTS

FAILED = "pay/invoice.payment_failed.json"

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def post(live_server, endpoint, body: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        live_server.url + endpoint.get_receive_path(),
        data=body.encode(),
        headers={"Content-Type": "application/json", "Stripe-Signature": sign(body)},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the test's own server
        return response.status, json.loads(response.read())


def wait_for(condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"still not true after {timeout} s")


def processed(delivery_id=None):
    qs = Delivery.objects.filter(status=Delivery.Status.PROCESSED)
    return qs.filter(id=delivery_id).exists() if delivery_id else qs.count()


def test_signed_payment_failed_becomes_contact_and_event(postgres, celery_worker, live_server, endpoint):
    status, answer = post(live_server, endpoint, fixture_text(FAILED))
    assert (status, answer) == (200, {"status": "queued"})
    delivery = Delivery.objects.get()
    wait_for(lambda: processed(delivery.id))
    contact = Contact.objects.get(team=endpoint.team)
    assert (contact.email, contact.first_name, contact.last_name) == ("customer@example.org", "Example", "Customer")
    event = Event.objects.get(team=endpoint.team)
    assert (event.name, event.contact_id) == ("failedPayment", contact.id)
    assert event.properties["amount_formatted"] == "$249.00"


def test_same_event_posted_twice_at_once_is_one_delivery_and_one_event(postgres, celery_worker, live_server, endpoint):
    body = fixture_text(FAILED)
    barrier = threading.Barrier(2)
    answers = []

    def send():
        barrier.wait()
        answers.append(post(live_server, endpoint, body))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answer["status"] for _, answer in answers) == ["duplicate", "queued"]
    assert [status for status, _ in answers] == [200, 200]
    assert Delivery.objects.count() == 1
    wait_for(processed)
    time.sleep(0.3)  # time for a second (wrong) event to appear, if one were coming
    assert Event.objects.count() == 1


def _broker_write_url(url: str | None) -> None:
    """Point the app's publishing at another broker URL (a closed port: the broker is down)."""
    celery_app.conf.broker_write_url = url
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def test_broker_down_at_receive_still_200_and_sweeper_processes_it_later(
    postgres, celery_worker, live_server, endpoint
):
    _broker_write_url("redis://127.0.0.1:9/0")  # nothing listens on port 9
    try:
        started = time.monotonic()
        status, answer = post(live_server, endpoint, fixture_text(FAILED))
        took = time.monotonic() - started
        work.wakes_flush()  # the wake-up goes out from this process's wake-up thread: while the broker is down
    finally:
        _broker_write_url(None)
    assert (status, answer["status"]) == (200, "queued")
    assert took < 5, "a broker outage must not hold Stripe's request"
    delivery = Delivery.objects.get()
    time.sleep(0.5)
    delivery.refresh_from_db()
    assert delivery.status == "received"  # stored, nobody was woken
    assert deliveries_sweep() == 0  # not due yet: it is less than a minute old

    Delivery.objects.filter(id=delivery.id).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert deliveries_sweep() == 1
    wait_for(lambda: processed(delivery.id))
    assert Event.objects.filter(name="failedPayment").count() == 1


# Every type beyond the first six, through a real worker.
KEY = "rk_live_" + "p" * 24


@pytest.mark.parametrize("event_type", LIFECYCLE_TYPES)
def test_every_lifecycle_type_is_processed_by_a_worker(
    postgres, celery_worker, live_server, team, make_endpoint, fake_stripe, event_type
):
    endpoint = make_endpoint(team, triggers={event_type: "lifecycle"})
    Endpoint.objects.filter(id=endpoint.id).update(api_key=KEY)  # disputes name a charge: Stripe says whose
    fake_stripe.keys[KEY] = "ok"
    payload = json.loads(fixture_text(FIXTURE_OF_TYPE[event_type])) | {"livemode": True}
    spec = SUPPORTED_EVENTS[event_type]
    customer_id = spec.customer(payload)
    if customer_id.startswith("ch_"):
        fake_stripe.objects["charges"].append({"id": customer_id, "object": "charge", "customer": "cus_disputer"})
        customer_id = "cus_disputer"
    contact = Contact.objects.create(team=team, email="known@example.com", stripe_customer_id=customer_id or "")
    if not customer_id:  # the object carries an email
        contact.email = spec.email(payload)
        contact.save()
    fake_stripe.objects["customers"].append(customer(0, email="known@example.com") | {"id": customer_id})
    status, answer = post(live_server, endpoint, json.dumps(payload))
    assert (status, answer) == (200, {"status": "queued"})
    delivery = Delivery.objects.get()
    wait_for(lambda: Delivery.objects.filter(id=delivery.id).exclude(status__in=["received", "processing"]).exists())
    delivery.refresh_from_db()
    assert delivery.status == "processed", delivery.last_error
    contact.refresh_from_db()
    event = Event.objects.filter(team=team, name="lifecycle").first()
    assert event is not None and event.contact_id == contact.id
    assert event.properties["stripe_event_type"] == event_type
    if event_type.startswith("customer.subscription."):
        assert contact.properties["subscriptionStatus"] == payload["data"]["object"]["status"]
    if event_type == "customer.deleted":
        assert not contact.subscribed
