import pytest
from django.test import Client
from django.urls import reverse

from loops.models import Loop

pytestmark = pytest.mark.django_db


def test_gallery_creates_a_draft_from_a_template(logged_in, team, make_loop):
    make_loop(team, activate=False)  # seeds the templates in transactional runs too
    Loop.objects.all().delete()
    page = logged_in.get(reverse("loops:loop-new")).content.decode()
    assert "Stripe - Payment Failed" in page and "Stripe - Upcoming Invoice" in page
    response = logged_in.post(reverse("loops:loop-new"), {"template": "stripe-payment-failed"})
    loop = Loop.objects.get(team=team)
    assert response["Location"] == reverse("loops:loop", args=[loop.pk])
    assert (loop.status, loop.trigger_event_name, loop.steps.count()) == ("draft", "failedPayment", 3)
    body = logged_in.get(response["Location"]).content.decode()
    assert "Wait for event" in body and "successfulPayment" in body


def test_list_shows_trigger_status_and_emails_sent(logged_in, team, make_loop):
    make_loop(team)
    body = logged_in.get(reverse("loops:loops")).content.decode()
    assert "Stripe - Payment Failed" in body and "Event received: failedPayment" in body and "Active" in body


def test_activate_and_pause(logged_in, team, make_loop):
    loop = make_loop(team, activate=False)
    logged_in.post(reverse("loops:loop-status", args=[loop.pk]), {"action": "activate"})
    loop.refresh_from_db()
    assert loop.status == "active"
    logged_in.post(reverse("loops:loop-status", args=[loop.pk]), {"action": "pause"})
    loop.refresh_from_db()
    assert loop.status == "paused"


def test_a_loop_that_cannot_be_activated_says_why(logged_in, team):
    loop = Loop.objects.create(team=team, name="Empty")
    response = logged_in.post(reverse("loops:loop-status", args=[loop.pk]), {"action": "activate"}, follow=True)
    body = response.content.decode()
    assert "Add at least one step that sends an email" in body and "Choose the event that triggers this loop" in body
    loop.refresh_from_db()
    assert loop.status == "draft"


@pytest.mark.parametrize("method", ["get", "post"])
def test_another_teams_user_gets_404(client, outsider, team, make_loop, method):
    loop = make_loop(team, activate=False)
    client.force_login(outsider)
    url = reverse("loops:loop" if method == "get" else "loops:loop-status", args=[loop.pk])
    assert getattr(client, method)(url, {"action": "activate"}).status_code == 404
    loop.refresh_from_db()
    assert loop.status == "draft"
    assert "Stripe - Payment Failed" not in client.get(reverse("loops:loops")).content.decode()


def test_status_change_needs_csrf(user, team, make_loop):
    loop = make_loop(team, activate=False)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(reverse("loops:loop-status", args=[loop.pk]), {"action": "activate"}).status_code == 403


def test_a_loop_whose_event_nothing_fires_says_how_to_fire_it(logged_in, team, make_loop, make_endpoint):
    """A gallery loop waits for `failedPayment`, which a new endpoint does not fire until it is set."""
    loop = make_loop(team, activate=False)
    endpoint = make_endpoint(team)
    page = logged_in.get(reverse("loops:loop", args=[loop.pk])).content.decode()
    assert "Nothing fires <code>failedPayment</code> yet" in page and "“Invoice payment failed”" in page
    assert reverse("webhook-settings:list") in page
    endpoint.event_settings.filter(event_type="invoice.payment_failed").update(trigger_event_name="failedPayment")
    assert "Nothing fires" not in logged_in.get(reverse("loops:loop", args=[loop.pk])).content.decode()
    endpoint.enabled = False
    endpoint.save()
    assert "Nothing fires" in logged_in.get(reverse("loops:loop", args=[loop.pk])).content.decode()


def test_a_loop_whose_event_was_received_has_no_hint(logged_in, team, make_loop):
    from contacts.models import Contact
    from loops.models import Event

    loop = make_loop(team, activate=False)
    loop.trigger_event_name = "signedUp"
    loop.save()
    page = logged_in.get(reverse("loops:loop", args=[loop.pk])).content.decode()
    assert "Nothing fires <code>signedUp</code> yet" in page and "Stripe event type fires" in page
    contact = Contact.objects.create(team=team, email="ada@example.com")
    Event.objects.create(team=team, contact=contact, name="signedUp")
    assert "Nothing fires" not in logged_in.get(reverse("loops:loop", args=[loop.pk])).content.decode()
