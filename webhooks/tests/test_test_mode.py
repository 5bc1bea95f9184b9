"""Stripe test mode: an endpoint is for live or for test mode, and test-mode data never reaches a real customer.

A live endpoint ignores test-mode events (and a test endpoint live ones), with the reason. A test endpoint's
events sync test contacts and events, kept apart from live ones; their loops run, but email only the team's
members. "Send test event" makes test data on either kind of endpoint and still emails the admin.
"""

import html
import json
import re

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.test import APIClient

from api.services import api_key_create
from conftest import fixture_text, livemode
from contacts.models import Contact
from loops.models import EmailMessage, Event, LoopRun
from loops.services.sending import emails_drain
from loopsync.celery import app as celery_app
from webhooks.models import Delivery, Endpoint
from webhooks.services import processing

pytestmark = pytest.mark.django_db

FAILED = "pay/invoice.payment_failed.json"  # livemode: true, for customer@example.org
CUSTOMER = "customer@example.org"
TRIGGERS = {"invoice.payment_failed": "failedPayment"}


@pytest.fixture
def test_endpoint(team, make_endpoint):
    return make_endpoint(team, mode=Endpoint.Mode.TEST, triggers=TRIGGERS)


def drain_all():
    processing.deliveries_drain()
    from loops.services.runs import runs_drain

    runs_drain()
    emails_drain()


def test_endpoints_are_live_unless_created_for_test_mode(team, make_endpoint):
    assert make_endpoint(team).mode == "live"
    assert make_endpoint(team, mode="test").livemode is False


def test_a_test_mode_event_on_a_live_endpoint_is_ignored_with_its_reason(endpoint, post_webhook, make_loop):
    make_loop(endpoint.team)
    response = post_webhook(endpoint, livemode(fixture_text(FAILED), live=False))
    assert response.json() == {"status": "ignored", "reason": "test_mode_event"}
    delivery = Delivery.objects.get()
    assert delivery.get_ignored_reason_display() == "A test-mode event on a live-mode endpoint"
    drain_all()
    assert not Contact.objects.exists() and not EmailMessage.objects.exists()


def test_a_live_event_on_a_test_endpoint_is_ignored_with_its_reason(test_endpoint, post_webhook):
    response = post_webhook(test_endpoint, fixture_text(FAILED))
    assert response.json() == {"status": "ignored", "reason": "live_mode_event"}
    drain_all()
    assert not Contact.objects.exists()


def test_replaying_an_event_of_the_other_mode_keeps_it_ignored(endpoint, post_webhook):
    post_webhook(endpoint, livemode(fixture_text(FAILED), live=False))
    delivery = Delivery.objects.get()
    assert processing.delivery_replay(delivery=delivery) == "ignored"
    drain_all()
    assert not Contact.objects.exists()


def test_a_test_event_syncs_a_test_contact_and_never_changes_the_live_one(test_endpoint, post_webhook, team):
    live = Contact.objects.create(team=team, email=CUSTOMER, first_name="Real", last_name="Person")
    body = json.loads(livemode(fixture_text(FAILED), live=False))
    body["data"]["object"]["customer_name"] = "Test Name"
    post_webhook(test_endpoint, json.dumps(body))
    drain_all()
    live.refresh_from_db()
    assert (live.first_name, live.last_name, live.stripe_customer_id) == ("Real", "Person", "")
    test = Contact.objects.get(team=team, livemode=False)
    assert (test.email, test.first_name, test.stripe_customer_id) == (CUSTOMER, "Test", "cus_1234")
    event = Event.objects.get()
    assert event.contact == test and event.livemode is False and event.properties["livemode"] is False
    assert not Event.objects.filter(contact=live).exists()


def test_test_mode_loops_run_but_email_only_the_teams_members(test_endpoint, post_webhook, team, user, make_loop):
    make_loop(team)  # "Stripe - Payment Failed": emails the customer at once
    post_webhook(test_endpoint, livemode(fixture_text(FAILED), live=False))  # a real customer's address
    member_event = json.loads(livemode(fixture_text(FAILED), live=False))
    member_event["id"] = "evt_test_for_the_owner"
    member_event["data"]["object"].update(customer_email=user.email.upper(), customer="cus_owner")
    post_webhook(test_endpoint, json.dumps(member_event))
    drain_all()
    assert LoopRun.objects.filter(contact__livemode=False).count() == 2
    customer = EmailMessage.objects.get(to_email=CUSTOMER)
    assert customer.status == "skipped" and "Test mode" in customer.error
    member = EmailMessage.objects.get(to_email__iexact=user.email)
    assert member.status == "sent"


def test_the_real_customer_is_never_emailed_in_test_mode_over_smtp(
    test_endpoint, post_webhook, team, make_loop, smtp_server
):
    make_loop(team)
    post_webhook(test_endpoint, livemode(fixture_text(FAILED), live=False))
    drain_all()
    assert smtp_server.messages == []
    assert EmailMessage.objects.get().status == "skipped"


def test_the_same_email_can_be_a_live_and_a_test_contact(endpoint, test_endpoint, post_webhook, team):
    post_webhook(endpoint, fixture_text(FAILED))
    test_body = json.loads(livemode(fixture_text(FAILED), live=False))
    test_body["id"] = "evt_test_mode_twin"
    post_webhook(test_endpoint, json.dumps(test_body))
    drain_all()
    assert sorted(Contact.objects.filter(team=team, email=CUSTOMER).values_list("livemode", flat=True)) == [
        False,
        True,
    ]
    assert Event.objects.filter(livemode=True).count() == Event.objects.filter(livemode=False).count() == 1


# --- the pages ------------------------------------------------------------------------------------


@pytest.fixture
def both_modes(team):
    live = Contact.objects.create(team=team, email="live@example.com", source="Stripe webhook")
    test = Contact.objects.create(team=team, email="test@example.com", source="Stripe webhook", livemode=False)
    Event.objects.create(team=team, contact=live, name="liveEvent")
    Event.objects.create(team=team, contact=test, name="testEvent", livemode=False)
    return live, test


def test_audience_shows_live_contacts_and_test_ones_behind_the_switch(logged_in, both_modes):
    live_page = logged_in.get(reverse("contacts:list")).content.decode()
    assert "live@example.com" in live_page and "test@example.com" not in live_page
    assert 'href="?test=1"' in live_page
    test_page = logged_in.get(reverse("contacts:list"), {"test": "1"}).content.decode()
    assert "test@example.com" in test_page and "live@example.com" not in test_page
    assert 'name="test" value="1"' in test_page  # the filters keep the switch
    searched = logged_in.get(reverse("contacts:list"), {"test": "1", "q": "live"}).content.decode()
    assert "live@example.com" not in searched


EVENT_LINK = re.compile(r'<a href="/events/\d+/">([^<]+)</a>')


def test_events_show_live_events_and_test_ones_behind_the_switch(logged_in, both_modes):
    live_page = logged_in.get(reverse("loops:events")).content.decode()
    assert EVENT_LINK.findall(live_page) == ["liveEvent"]
    test_page = logged_in.get(reverse("loops:events"), {"test": "1"}).content.decode()
    assert EVENT_LINK.findall(test_page) == ["testEvent"]


def test_the_switch_starts_the_other_data_from_its_newest_page(logged_in, team, both_modes):
    live, _ = both_modes
    Event.objects.bulk_create(Event(team=team, contact=live, name="liveEvent") for _ in range(60))
    page_one = logged_in.get(reverse("loops:events")).content.decode()
    older = html.unescape(re.search(r'href="(\?[^"]*older=[^"]*)"', page_one)[1])
    page_two = logged_in.get(reverse("loops:events") + older).content.decode()
    switch = html.unescape(re.search(r'<a href="([^"]*)"[^>]*>Test data</a>', page_two)[1])
    assert "older" not in switch and "test=1" in switch
    assert EVENT_LINK.findall(logged_in.get(reverse("loops:events") + switch).content.decode()) == ["testEvent"]


def test_a_test_contact_and_event_say_so_on_their_pages(logged_in, both_modes):
    _, test = both_modes
    assert "Test data" in logged_in.get(reverse("contacts:detail", args=[test.pk])).content.decode()
    event = Event.objects.get(livemode=False)
    assert "Test data" in logged_in.get(reverse("loops:event", args=[event.pk])).content.decode()


def test_the_dashboard_counts_live_contacts_and_emails_only(logged_in, team, both_modes):
    live, test = both_modes
    Contact.objects.create(team=team, email="another-test@example.com", livemode=False)
    for contact in (live, test):
        EmailMessage.objects.create(
            team=team, contact=contact, to_email=contact.email, from_email="a@b.c", subject="s", html_body="h",
            text_body="t", status="sent",
        )  # fmt: skip
    body = logged_in.get(reverse("home")).content.decode()
    assert "<span>1</span> contacts" in body and "<span>1</span> emails sent" in body
    assert "2 test contacts</a>,\n    1 test email sent" in body


def test_the_api_never_sees_test_contacts(team, both_modes):
    api_client = APIClient()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(team=team, name='t').key}")
    found = api_client.get("/api/v1/contacts/find", {"email": "test@example.com"})
    assert found.status_code == 200 and found.json() == []
    events = api_client.get("/api/v1/events").json()["data"]
    assert [event["eventName"] for event in events] == ["liveEvent"]
    created = api_client.post("/api/v1/contacts/create", {"email": "test@example.com"}, format="json")
    assert created.status_code == 200  # a live contact next to the test one, not a conflict
    assert Contact.objects.filter(team=team, email="test@example.com").count() == 2


def test_the_endpoint_page_and_list_show_its_mode(logged_in, test_endpoint, endpoint):
    page = logged_in.get(reverse("webhook-settings:detail", args=[test_endpoint.pk])).content.decode()
    assert "Test mode" in page and "email only your team's members" in page
    listing = logged_in.get(reverse("webhook-settings:list")).content.decode()
    assert listing.count("badge-test") == 1


def test_a_test_mode_endpoint_is_chosen_when_it_is_created(logged_in, team):
    logged_in.post(reverse("webhook-settings:new"), {"name": "Sandbox", "mode": "test"})
    assert Endpoint.objects.get(team=team).mode == "test"
    response = logged_in.post(reverse("webhook-settings:new"), {"name": "Bad", "mode": "staging"})
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert Endpoint.objects.filter(team=team).count() == 1


def test_the_command_creates_live_or_test_endpoints(team, capsys):
    call_command("stripe_endpoint", "create", "--team", "Acme", "--secret", "whsec_cmd_12345678", "--mode", "test")
    assert Endpoint.objects.get(team=team).mode == "test"
    assert "Stripe's test mode" in capsys.readouterr().out
    call_command("stripe_endpoint", "create", "--team", "Acme", "--secret", "whsec_cmd_12345678")
    assert Endpoint.objects.filter(team=team, mode="live").count() == 1
    with pytest.raises(CommandError):
        call_command("stripe_endpoint", "create", "--team", "Acme", "--secret", "whsec_cmd_12345678", "--mode", "x")


# --- "Send test event" ----------------------------------------------------------------------------


def send_test_event(client, endpoint, event_type, capture):
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        with capture(execute=True):
            return client.post(reverse("webhook-settings:test", args=[endpoint.pk, event_type]))
    finally:
        celery_app.conf.task_always_eager = eager


@pytest.mark.parametrize("mode", ["live", "test"])
def test_send_test_event_makes_test_data_and_emails_the_admin(
    logged_in, user, team, make_endpoint, make_loop, smtp_server, django_capture_on_commit_callbacks, mode
):
    endpoint = make_endpoint(team, mode=mode, triggers=TRIGGERS)
    make_loop(team)
    live = Contact.objects.create(team=team, email=user.email, first_name="Owner", stripe_customer_id="cus_Real")
    send_test_event(logged_in, endpoint, "invoice.payment_failed", django_capture_on_commit_callbacks)
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.sample, delivery.livemode) == ("processed", True, False)
    test = Contact.objects.get(team=team, livemode=False)
    assert test.email == user.email and test.stripe_customer_id.startswith("cus_test_")
    live.refresh_from_db()
    assert (live.first_name, live.stripe_customer_id) == ("Owner", "cus_Real")
    [message] = smtp_server.messages
    assert message["X-Envelope-To"] == user.email
    assert EmailMessage.objects.get().status == "sent"


def test_a_second_test_event_names_the_first_ones_customer(
    logged_in, user, endpoint, django_capture_on_commit_callbacks
):
    send_test_event(logged_in, endpoint, "customer.created", django_capture_on_commit_callbacks)
    first = Contact.objects.get(livemode=False).stripe_customer_id
    send_test_event(logged_in, endpoint, "invoice.payment_failed", django_capture_on_commit_callbacks)
    assert Contact.objects.filter(livemode=False).count() == 1
    assert Contact.objects.get(livemode=False).stripe_customer_id == first


def test_the_test_result_links_the_test_contact(logged_in, endpoint, django_capture_on_commit_callbacks):
    response = send_test_event(logged_in, endpoint, "invoice.payment_failed", django_capture_on_commit_callbacks)
    page = logged_in.get(response["Location"]).content.decode()
    contact = Contact.objects.get(livemode=False)
    assert reverse("contacts:detail", args=[contact.pk]) in page and "Test data" in page


def test_a_test_mode_email_queued_for_a_member_who_left_is_skipped(test_endpoint, post_webhook, team, user, make_loop):
    make_loop(team)
    member_event = json.loads(livemode(fixture_text(FAILED), live=False))
    member_event["data"]["object"]["customer_email"] = user.email
    post_webhook(test_endpoint, json.dumps(member_event))
    processing.deliveries_drain()
    from loops.services.runs import runs_drain

    runs_drain()
    assert EmailMessage.objects.get().status == "queued"
    team.memberships.filter(user=user).delete()  # before the sender gets to it
    emails_drain()
    message = EmailMessage.objects.get()
    assert message.status == "skipped" and "Test mode" in message.error


def test_the_upgrade_stops_what_test_mode_events_started_before_they_were_kept_apart(team, make_loop):
    """Before test mode, a test-mode event synced a live contact; its properties said `livemode: false`."""
    import importlib

    from django.apps import apps

    from loops.services import event_fire

    make_loop(team)  # "Stripe - Payment Failed": an email, then a wait for a payment
    customer = Contact.objects.create(team=team, email=CUSTOMER)
    old = event_fire(
        team=team, contact=customer, name="failedPayment", properties={"livemode": False}, source="stripe",
        idempotency_key="evt_old_test",
    ).event  # fmt: skip
    live = event_fire(
        team=team, contact=customer, name="failedPayment", properties={"livemode": True}, source="stripe",
        idempotency_key="evt_live",
    ).event  # fmt: skip
    from loops.services.runs import runs_drain

    runs_drain()
    assert EmailMessage.objects.filter(status="queued").count() == 2
    migration = importlib.import_module("loops.migrations.0006_test_mode")
    migration.test_mode_events_apart(apps, None)
    old.refresh_from_db()
    live.refresh_from_db()
    assert (old.livemode, live.livemode) == (False, True)
    assert LoopRun.objects.get(event=old).status == "stopped"
    assert LoopRun.objects.get(event=live).status == "waiting"
    assert EmailMessage.objects.get(run__event=old).status == "skipped"
    assert EmailMessage.objects.get(run__event=live).status == "queued"
