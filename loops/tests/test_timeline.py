"""A contact's story: the timeline on its page (its webhook, event, loop run and each step passed, the email sent),
each item linked, and the email opened exactly as it was sent; another team's email is 404."""

import html
import json

import pytest
from django.test import Client
from django.urls import reverse

from conftest import fixture_text
from contacts.models import Contact
from loops.models import EmailMessage, Event, LoopRun
from loops.services import emails_drain, runs_drain
from webhooks.models import Delivery
from webhooks.services import processing

pytestmark = pytest.mark.django_db


def _work() -> None:
    for _ in range(2):
        processing.deliveries_drain(budget_seconds=5)
        runs_drain(budget_seconds=5)
        emails_drain(budget_seconds=5)


@pytest.fixture
def story(team, make_endpoint, make_loop, post_webhook, mailoutbox):
    endpoint = make_endpoint(team, triggers={"invoice.payment_failed": "failedPayment"})
    make_loop(team, "stripe-payment-failed")
    event = json.loads(fixture_text("pay/invoice.payment_failed.json"))
    assert post_webhook(endpoint, json.dumps(event)).json() == {"status": "queued"}
    _work()
    return Contact.objects.get(team=team, email="customer@example.org")


def test_the_contact_page_tells_its_story_newest_first_each_item_linked(logged_in, story):
    delivery, event = Delivery.objects.get(), Event.objects.get(contact=story)
    run, email = LoopRun.objects.get(contact=story), EmailMessage.objects.get(contact=story)
    page = html.unescape(logged_in.get(reverse("contacts:detail", args=[story.pk])).content.decode())
    activity = page[page.index("<h2>Activity</h2>") : page.index("<h2>Events</h2>")]
    links = {
        f'href="{reverse("webhook-log:delivery", args=[delivery.pk])}">Stripe webhook invoice.payment_failed',
        f'href="{reverse("loops:event", args=[event.pk])}">Event failedPayment',
        f'href="{reverse("loops:loop", args=[run.loop_id])}">Entered “Stripe - Payment Failed”',
        f'href="{reverse("loops:loop", args=[run.loop_id])}">Stripe - Payment Failed: Send email',
        f'href="{reverse("loops:email", args=[email.pk])}">Email “{email.subject}”',
    }
    for link in links:
        assert link in activity, link
    order = [activity.index(text) for text in ("Email “", "Entered “", "Event failedPayment")]
    assert order == sorted(order)  # newest first: the email, the run, the event


def test_an_email_opens_as_it_was_sent_and_another_teams_is_404(logged_in, story, outsider):
    email = EmailMessage.objects.get(contact=story)
    page = logged_in.get(reverse("loops:email", args=[email.pk]))
    text = page.content.decode()
    assert page.status_code == 200 and f"<h1>{html.escape(email.subject)}</h1>" in text
    assert f'sandbox srcdoc="{html.escape(email.html_body[:60])}' in text  # the stored HTML, escaped once
    assert "unsafe-inline" in page["Content-Security-Policy"]  # the email's own styles, inside the sandbox
    client = Client()
    client.force_login(outsider)
    assert client.get(reverse("loops:email", args=[email.pk])).status_code == 404
