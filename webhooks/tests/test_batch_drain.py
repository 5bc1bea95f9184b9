"""The drain's set-based path (batching.apply_batch): a batch's contacts, events and runs in a few
statements, with the same results as one by one — out-of-order events, once-only events, "Contact added"
loops — and a fall-back to one by one when another writer got there first."""

import json

import psycopg
import pytest
from django.db import connection

from conftest import fixture_text, livemode
from contacts.models import Contact
from loops.models import Event, LoopRun
from webhooks.models import Delivery
from webhooks.services import processing

CREATED = "dj-stripe/customer.created.with_name.json"


def customer(n: int, *, email: str = "", name: str = "", created: int = 1_800_000_000, event_id: str = "") -> str:
    payload = json.loads(livemode(fixture_text(CREATED)))
    obj = payload["data"]["object"]
    obj.update(id=f"cus_batch_{n}", email=email or f"batch{n}@example.com", name=name or f"Batch Customer{n}")
    payload.update(id=event_id or f"evt_batch_{n}", created=created)
    return json.dumps(payload)


@pytest.fixture
def created_endpoint(team, make_endpoint):
    return make_endpoint(team, triggers={"customer.created": "newStripeCustomer"})


def store(post_webhook, endpoint, body: str) -> None:
    assert post_webhook(endpoint, body).json() == {"status": "queued"}


@pytest.mark.django_db
def test_a_batch_of_new_customers_takes_a_few_statements_not_a_few_per_event(
    created_endpoint, post_webhook, django_assert_max_num_queries
):
    for n in range(50):
        store(post_webhook, created_endpoint, customer(n))
    with django_assert_max_num_queries(25):  # one by one, it was about ten per event
        assert processing.deliveries_drain() == 50
    assert Delivery.objects.filter(status="processed").count() == 50
    assert Contact.objects.filter(team=created_endpoint.team).count() == 50
    assert Event.objects.filter(name="newStripeCustomer").count() == 50
    ada = Contact.objects.get(email="batch7@example.com")
    assert (ada.first_name, ada.last_name, ada.stripe_customer_id) == ("Batch", "Customer7", "cus_batch_7")
    assert Event.objects.get(idempotency_key="evt_batch_7").contact == ada


@pytest.mark.django_db
def test_a_contacts_events_in_one_batch_keep_the_newest_data_whatever_their_order(created_endpoint, post_webhook):
    store(post_webhook, created_endpoint, customer(1, name="New Name", created=1_800_000_100, event_id="evt_new"))
    store(post_webhook, created_endpoint, customer(1, name="Old Name", created=1_800_000_000, event_id="evt_old"))
    store(post_webhook, created_endpoint, customer(1, email="BATCH1@example.com", name="", event_id="evt_same"))
    processing.deliveries_drain()
    contact = Contact.objects.get()  # one contact, matched case-insensitively
    assert (contact.first_name, contact.last_name) == ("New", "Name")
    assert contact.stripe_event_created.timestamp() == 1_800_000_100
    assert set(Event.objects.values_list("idempotency_key", flat=True)) == {"evt_new", "evt_old", "evt_same"}


@pytest.mark.django_db
def test_a_contact_added_loop_enrols_each_new_contact_of_a_batch_once(created_endpoint, post_webhook, make_loop):
    loop = make_loop(created_endpoint.team)
    loop.trigger, loop.trigger_event_name = "contact_added", ""
    loop.save()
    Contact.objects.create(team=created_endpoint.team, email="batch0@example.com")  # exists: not added now
    for n in range(3):
        store(post_webhook, created_endpoint, customer(n))
    processing.deliveries_drain()
    enrolled = set(LoopRun.objects.filter(loop=loop).values_list("contact__email", flat=True))
    assert enrolled == {"batch1@example.com", "batch2@example.com"}


@pytest.mark.django_db
def test_an_email_change_in_a_batch_goes_one_by_one_and_keeps_its_contacts_order(created_endpoint, post_webhook):
    Contact.objects.create(team=created_endpoint.team, email="old@example.com", stripe_customer_id="cus_batch_1")
    store(post_webhook, created_endpoint, customer(2))  # another customer: the set-based path
    moved = json.loads(customer(1, email="new@example.com", event_id="evt_move"))
    moved["type"] = "customer.updated"
    moved["data"]["previous_attributes"] = {"email": "old@example.com"}
    created_endpoint.event_settings.filter(event_type="customer.updated").update(enabled=True)
    store(post_webhook, created_endpoint, json.dumps(moved))
    store(post_webhook, created_endpoint, customer(1, email="new@example.com", name="After Move", event_id="evt_after"))
    processing.deliveries_drain()
    assert set(Delivery.objects.values_list("status", flat=True)) == {"processed"}
    emails = set(Contact.objects.values_list("email", flat=True))
    assert emails == {"new@example.com", "batch2@example.com"}  # moved, not a new contact beside the old one
    assert Contact.objects.get(email="new@example.com").first_name == "After"


@pytest.mark.django_db(transaction=True)
def test_a_contact_another_writer_creates_meanwhile_sends_the_batch_one_by_one(
    postgres, created_endpoint, post_webhook, monkeypatch, tasks_published
):
    for n in range(3):
        store(post_webhook, created_endpoint, customer(n))
    real_lock = processing.contacts_lock

    def lock_then_someone_else_creates(*, keys):
        locked = real_lock(keys=keys)
        # The API or the app creating batch1's contact now, on its own connection: it takes no advisory lock.
        db = connection.settings_dict
        with psycopg.connect(
            host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"], autocommit=True
        ) as other:
            other.execute(
                "INSERT INTO contacts_contact (team_id, email, first_name, last_name, source, subscribed, "
                "unsubscribed_by, livemode, user_group, user_id, stripe_customer_id, properties, stripe_billing, "
                "created_at, updated_at) VALUES (%s, 'batch1@example.com', 'Api', '', 'API', true, '', true, '', "
                "'', '', '{}', '{}', now(), now())",
                (created_endpoint.team_id,),
            )
        return locked

    monkeypatch.setattr(processing, "contacts_lock", lock_then_someone_else_creates)
    assert processing.deliveries_drain() == 3
    assert set(Delivery.objects.values_list("status", flat=True)) == {"processed"}
    assert Contact.objects.filter(email="batch1@example.com").count() == 1
    assert Contact.objects.get(email="batch1@example.com").stripe_customer_id == "cus_batch_1"  # synced onto it
    assert Event.objects.count() == 3


@pytest.mark.django_db
def test_an_event_fired_twice_in_one_batch_through_two_endpoints_is_one_event(team, make_endpoint, post_webhook):
    first = make_endpoint(team, triggers={"customer.created": "newStripeCustomer"})
    second = make_endpoint(team, triggers={"customer.created": "newStripeCustomer"})
    store(post_webhook, first, customer(1))
    store(post_webhook, second, customer(1))  # the same Stripe event, pasted into two endpoints
    processing.deliveries_drain()
    assert Delivery.objects.filter(status="processed").count() == 2
    assert Event.objects.count() == 1 and Contact.objects.count() == 1


@pytest.mark.django_db
def test_a_batch_fires_the_additional_event_and_wakes_runs_waiting_for_either(
    created_endpoint, post_webhook, make_loop
):
    from datetime import timedelta

    from django.utils import timezone

    created_endpoint.event_settings.filter(event_type="customer.created").update(additional_event_name="signedUp")
    ada = Contact.objects.create(team=created_endpoint.team, email="batch1@example.com")
    later = timezone.now() + timedelta(days=3)
    waiting = [  # one loop each: a run without an event is once per (loop, contact)
        LoopRun.objects.create(
            team=created_endpoint.team,
            loop=make_loop(created_endpoint.team),
            contact=ada,
            status="waiting",
            waiting_for=name,
            next_due_at=later,
        )
        for name in ("newStripeCustomer", "signedUp", "somethingElse")
    ]
    loop = waiting[0].loop
    other = Contact.objects.create(team=created_endpoint.team, email="other@example.com")
    not_theirs = LoopRun.objects.create(
        team=created_endpoint.team,
        loop=loop,
        contact=other,
        status="waiting",
        waiting_for="signedUp",
        next_due_at=later,
    )
    store(post_webhook, created_endpoint, customer(1))
    store(post_webhook, created_endpoint, customer(2))
    processing.deliveries_drain()
    assert set(Event.objects.filter(contact=ada).values_list("name", "idempotency_key")) == {
        ("newStripeCustomer", "evt_batch_1"),
        ("signedUp", "evt_batch_1:additional"),
    }
    assert Event.objects.filter(name="signedUp").count() == 2  # and batch2's
    due = {run.waiting_for: run.next_due_at for run in LoopRun.objects.filter(id__in=[r.id for r in waiting])}
    assert due["newStripeCustomer"] <= timezone.now() and due["signedUp"] <= timezone.now()
    assert due["somethingElse"] == later
    not_theirs.refresh_from_db()
    assert not_theirs.next_due_at == later
