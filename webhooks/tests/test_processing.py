"""Processing a stored delivery: the contact, the fired event, claims, errors and the sweeper."""

import json
import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from conftest import fixture_text, livemode
from contacts.models import Contact
from loops.models import Event
from webhooks.models import Delivery
from webhooks.services import processing, receiving
from webhooks.tasks import process_delivery

FAILED = "pay/invoice.payment_failed.json"


def customer_updated(event_id: str, created: int, email: str, name: str, previous: dict | None = None) -> str:
    """A customer.updated as Stripe sends it; none with a changed email or name was found to reuse."""
    data = {"object": {"id": "cus_A1", "object": "customer", "email": email, "name": name, "created": 1700000000}}
    if previous is not None:
        data["previous_attributes"] = previous
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": "2025-03-31.basil",
            "created": created,
            "livemode": True,
            "type": "customer.updated",
            "data": data,
        }
    )


def receive(endpoint, post_webhook, body: str) -> Delivery:
    assert post_webhook(endpoint, body).status_code == 200
    return Delivery.objects.filter(endpoint=endpoint).latest("id")


@pytest.mark.django_db
class TestProcess:
    def test_processed_delivery_syncs_contact_and_fires_named_event(self, endpoint, post_webhook):
        delivery = receive(endpoint, post_webhook, fixture_text(FAILED))
        processing.delivery_process(delivery_id=delivery.id)
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_error) == ("processed", 1, "")
        assert delivery.processed_at is not None and delivery.next_attempt_at is None
        contact = Contact.objects.get(team=endpoint.team)
        assert (contact.email, contact.first_name, contact.last_name) == ("customer@example.org", "Example", "Customer")
        assert contact.stripe_customer_id == "cus_1234"
        event = Event.objects.get(team=endpoint.team)
        assert (event.name, event.contact, event.source) == ("failedPayment", contact, "stripe")
        assert event.idempotency_key == "evt_fixture_pay_invoice_payment_failed"
        assert event.properties["amount_formatted"] == "$249.00"
        assert event.properties["stripe_event_type"] == "invoice.payment_failed"

    def test_type_without_trigger_only_syncs_the_contact(self, endpoint, post_webhook):
        delivery = receive(endpoint, post_webhook, livemode(fixture_text("pay/invoice.paid.json")))
        processing.delivery_process(delivery_id=delivery.id)
        assert Contact.objects.filter(email="missouri@example.org", first_name="Missouri").exists()
        assert not Event.objects.exists()

    def test_trigger_renamed_after_receipt_fires_the_current_name(self, endpoint, post_webhook):
        delivery = receive(endpoint, post_webhook, fixture_text(FAILED))
        endpoint.event_settings.filter(event_type="invoice.payment_failed").update(trigger_event_name="dunning")
        processing.delivery_process(delivery_id=delivery.id)
        assert Event.objects.get().name == "dunning"

    def test_processing_twice_has_one_effect(self, endpoint, post_webhook):
        delivery = receive(endpoint, post_webhook, fixture_text(FAILED))
        processing.delivery_process(delivery_id=delivery.id)
        assert processing.delivery_process(delivery_id=delivery.id) is None
        process_delivery.apply(args=[delivery.id])
        assert Event.objects.count() == 1 and Contact.objects.count() == 1
        delivery.refresh_from_db()
        assert delivery.attempts == 1

    def test_ignored_delivery_is_never_processed(self, endpoint, post_webhook):
        delivery = receive(endpoint, post_webhook, fixture_text("stripe-ruby-mock/charge.succeeded.json"))
        assert processing.delivery_process(delivery_id=delivery.id) is None
        delivery.refresh_from_db()
        assert delivery.status == "ignored" and delivery.attempts == 0

    def test_live_claim_blocks_a_second_worker_until_its_lease_runs_out(self, endpoint, post_webhook):
        delivery = receive(endpoint, post_webhook, fixture_text(FAILED))
        assert processing.delivery_claim(delivery_id=delivery.id)
        assert not processing.delivery_claim(delivery_id=delivery.id)
        assert processing.delivery_process(delivery_id=delivery.id) is None
        Delivery.objects.filter(id=delivery.id).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
        processed = processing.delivery_process(delivery_id=delivery.id)
        assert processed.status == "processed" and processed.attempts == 2
        assert Event.objects.count() == 1

    def test_permanent_error_marks_failed_with_the_error_and_no_retry(self, endpoint, post_webhook):
        delivery = receive(endpoint, post_webhook, fixture_text(FAILED))
        payload = delivery.payload
        payload["data"]["object"].update(customer_email=None, customer=None)
        Delivery.objects.filter(id=delivery.id).update(payload=payload)
        process_delivery.apply(args=[delivery.id])
        delivery.refresh_from_db()
        assert delivery.status == "failed"
        assert "no email and no customer" in delivery.last_error
        assert delivery.next_attempt_at is None
        assert not Contact.objects.exists()

    def test_older_customer_update_after_newer_keeps_the_newer_name(self, team, make_endpoint, post_webhook):
        endpoint = make_endpoint(team)
        newer = receive(
            endpoint,
            post_webhook,
            customer_updated("evt_new", 1_800_000_100, "ada@example.com", "Ada King", {"name": "Ada Byron"}),
        )
        older = receive(
            endpoint,
            post_webhook,
            customer_updated("evt_old", 1_800_000_000, "ada@example.com", "Ada Byron", {"name": None}),
        )
        processing.delivery_process(delivery_id=newer.id)
        processing.delivery_process(delivery_id=older.id)
        contact = Contact.objects.get()
        assert (contact.first_name, contact.last_name) == ("Ada", "King")
        assert Delivery.objects.filter(status="processed").count() == 2

    def test_customer_email_change_moves_the_contact(self, team, make_endpoint, post_webhook):
        endpoint = make_endpoint(team, triggers={"customer.created": "newStripeCustomer"})
        created = receive(endpoint, post_webhook, livemode(fixture_text("dj-stripe/customer.created.with_name.json")))
        processing.delivery_process(delivery_id=created.id)
        change = customer_updated(
            "evt_change", 1_800_000_000, "jane@austen.example", "Jane Austen", {"email": "jane.austen@example.com"}
        )
        processing.delivery_process(delivery_id=receive(endpoint, post_webhook, change).id)
        contact = Contact.objects.get()
        assert contact.email == "jane@austen.example"
        assert contact.events.get().name == "newStripeCustomer"

    def test_team_b_endpoint_never_touches_team_a(self, team, other_team, make_endpoint, post_webhook):
        mine = Contact.objects.create(team=team, email="customer@example.org", first_name="Mine", last_name="Only")
        endpoint_b = make_endpoint(other_team, triggers={"invoice.payment_failed": "failedPayment"})
        processing.delivery_process(delivery_id=receive(endpoint_b, post_webhook, fixture_text(FAILED)).id)
        mine.refresh_from_db()
        assert (mine.first_name, mine.last_name) == ("Mine", "Only")
        assert not Event.objects.filter(team=team).exists()
        assert Event.objects.get().contact.team == other_team

    def test_without_a_broker_the_delivery_is_processed_in_process(
        self, endpoint, post_webhook, django_capture_on_commit_callbacks, tasks_in_process
    ):
        with django_capture_on_commit_callbacks(execute=True):
            delivery = receive(endpoint, post_webhook, fixture_text(FAILED))
        delivery.refresh_from_db()
        assert delivery.status == "processed"
        assert Event.objects.filter(name="failedPayment").exists()


@pytest.mark.django_db
def test_sweeper_wakes_the_drain_only_when_something_is_due(endpoint, post_webhook, tasks_in_process):
    delivery = receive(endpoint, post_webhook, fixture_text(FAILED))  # its wake-up never ran (no commit)
    assert processing.deliveries_sweep() == 0  # less than a minute old: its wake-up may still come
    Delivery.objects.filter(id=delivery.id).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert processing.deliveries_sweep() == 1
    delivery.refresh_from_db()
    assert delivery.status == "processed"


@pytest.mark.django_db
def test_drain_processes_in_batches_and_skips_rows_waiting_for_their_backoff(team, make_endpoint, post_webhook):
    endpoint = make_endpoint(team, triggers={"customer.created": "newStripeCustomer"})
    template = json.loads(livemode(fixture_text("dj-stripe/customer.created.with_name.json")))
    for i in range(7):
        event = {**template, "id": f"evt_{i}"}
        event["data"] = {"object": {**template["data"]["object"], "email": f"c{i}@example.com"}}
        receive(endpoint, post_webhook, json.dumps(event))
    backing_off = Delivery.objects.get(stripe_event_id="evt_3")
    Delivery.objects.filter(id=backing_off.id).update(attempts=1, next_attempt_at=timezone.now() + timedelta(minutes=1))
    processing.deliveries_drain(batch_size=2)
    assert Delivery.objects.filter(status="processed").count() == 6
    assert Contact.objects.count() == 6 and Event.objects.count() == 6
    assert Delivery.objects.get(id=backing_off.id).status == "received"


@pytest.mark.django_db
def test_stale_claim_of_a_dead_worker_is_retaken_by_the_sweeper(endpoint, post_webhook, tasks_in_process):
    delivery = receive(endpoint, post_webhook, fixture_text(FAILED))
    assert processing.delivery_claim(delivery_id=delivery.id)  # the worker died holding it
    assert processing.deliveries_sweep() == 0
    Delivery.objects.filter(id=delivery.id).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert processing.deliveries_sweep() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("processed", 2)


@pytest.mark.django_db(transaction=True)
def test_temporary_database_error_is_retried_then_processed(postgres, endpoint):
    """A real lock timeout (another transaction holds the contact) is temporary: released, retried."""
    # Stored directly: posting it would wake a worker (or run it in-process) before the lock is held.
    payload = json.loads(fixture_text(FAILED))
    delivery = Delivery.objects.create(
        team=endpoint.team,
        endpoint=endpoint,
        stripe_event_id=payload["id"],
        event_type=payload["type"],
        livemode=True,
        payload=payload,
        next_attempt_at=timezone.now() + receiving.SWEEP_AFTER,
    )
    contact = Contact.objects.create(team=endpoint.team, email="customer@example.org")
    locked, release = threading.Event(), threading.Event()

    def hold_lock():
        with connections["default"].cursor() as cursor:  # this thread's own connection
            cursor.execute("BEGIN")
            cursor.execute("SELECT id FROM contacts_contact WHERE id = %s FOR UPDATE", [contact.id])
            locked.set()
            release.wait(10)
            cursor.execute("ROLLBACK")
        connections["default"].close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(5)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
        process_delivery(delivery.id)  # as a worker runs it: the error is temporary, the row released
        delivery.refresh_from_db()
        assert delivery.status == "received" and delivery.attempts == 1
        assert "lock" in delivery.last_error
        assert delivery.next_attempt_at > timezone.now()
    finally:
        release.set()
        holder.join()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    process_delivery.apply(args=[delivery.id])
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("processed", 2, "")
    assert Event.objects.count() == 1


@pytest.mark.django_db
def test_temporary_errors_give_up_after_max_attempts(endpoint, post_webhook):
    delivery = receive(endpoint, post_webhook, fixture_text(FAILED))
    Delivery.objects.filter(id=delivery.id).update(status="processing", attempts=processing.MAX_ATTEMPTS)
    processing.delivery_release(delivery_id=delivery.id, error="OperationalError: gone")
    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert "Gave up after" in delivery.last_error and "gone" in delivery.last_error
