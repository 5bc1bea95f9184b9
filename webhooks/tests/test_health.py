"""An endpoint's health: the last delivery, refused requests counted by kind with the last reason (never their
bodies), and the banner when every recent request failed the signature (the secret does not match)."""

import html
from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from conftest import fixture_text, sign
from webhooks.models import Delivery, EventSetting, Rejection

pytestmark = pytest.mark.django_db


def health(client, endpoint) -> str:
    page = html.unescape(client.get(reverse("webhook-settings:detail", args=[endpoint.pk])).content.decode())
    return page[page.index('aria-label="Health"') :]


def test_a_wrong_secret_is_counted_without_its_body_and_says_the_secret_does_not_match(
    logged_in, endpoint, post_webhook
):
    body = fixture_text("pay/invoice.payment_failed.json")
    for _ in range(3):
        assert post_webhook(endpoint, body, secret="whsec_not_the_one").status_code == 400
    assert post_webhook(endpoint, body, signature=None).status_code == 400
    assert not Delivery.objects.exists()
    [row] = Rejection.objects.filter(endpoint=endpoint)
    assert (row.kind, row.count) == ("signature", 4) and row.last_reason == "Missing Stripe-Signature header."
    assert "customer@example.org" not in str(list(Rejection.objects.values()))  # nothing of the body
    page = html.unescape(logged_in.get(reverse("webhook-settings:detail", args=[endpoint.pk])).content.decode())
    assert "The signing secret does not match." in page
    assert "4 × wrong or missing signature" in health(logged_in, endpoint)
    assert "Last delivery received</dt><dd>none yet" in health(logged_in, endpoint)


def test_a_good_delivery_clears_the_banner_and_old_refusals_leave_the_count(logged_in, endpoint, post_webhook):
    body = fixture_text("pay/invoice.payment_failed.json")
    with time_machine.travel(timezone.now() - timedelta(hours=30)):
        post_webhook(endpoint, body, secret="whsec_not_the_one")
    post_webhook(endpoint, "{}", signature=None)
    assert post_webhook(endpoint, body).status_code == 200
    page = health(logged_in, endpoint)
    assert "The signing secret does not match." not in page
    assert "1 × wrong or missing signature" in page  # the one of the last 24 hours
    assert "Last refused request</dt><dd>" in page and "Missing Stripe-Signature header." in page
    stale = post_webhook(endpoint, body, signature=sign(body, timestamp=int(timezone.now().timestamp()) - 3600))
    assert stale.status_code == 400 and Rejection.objects.filter(kind="stale").exists()


def test_a_new_endpoint_fires_what_the_seeded_templates_listen_for(logged_in, team, make_loop):
    make_loop(team, activate=False)  # the templates are seeded (an earlier transactional test may empty them)
    logged_in.post(reverse("webhook-settings:new"), {"name": "Main", "mode": "live"})
    fired = dict(
        EventSetting.objects.filter(team=team)
        .exclude(trigger_event_name="")
        .values_list("event_type", "trigger_event_name")
    )
    assert fired["invoice.payment_failed"] == "failedPayment" and fired["invoice.paid"] == "successfulPayment"
    assert fired["customer.created"] == "newStripeCustomer" and fired["invoice.upcoming"] == "upcomingInvoice"
    assert fired["customer.subscription.trial_will_end"] == "trialEnding"
    assert "charge.refunded" not in fired  # no template listens for chargeRefunded: it only syncs the contact


def test_the_stripe_settings_warn_of_active_loops_that_nothing_starts(logged_in, team, make_loop, make_endpoint):
    make_loop(team)  # "Stripe - Payment Failed", active, listening for failedPayment
    page = html.unescape(logged_in.get(reverse("webhook-settings:list")).content.decode())
    assert "1 active loop listens for an event that no endpoint fires" in page and "<code>failedPayment</code>" in page
    make_endpoint(team, triggers={"invoice.payment_failed": "failedPayment"})
    page = html.unescape(logged_in.get(reverse("webhook-settings:list")).content.decode())
    assert "no endpoint fires" not in page


def test_a_new_secret_clears_the_banner_and_no_secret_says_so(logged_in, team, endpoint, post_webhook, make_endpoint):
    body = fixture_text("pay/invoice.payment_failed.json")
    post_webhook(endpoint, body, secret="whsec_not_the_one")
    detail = reverse("webhook-settings:detail", args=[endpoint.pk])
    assert "The signing secret does not match." in logged_in.get(detail).content.decode()
    logged_in.post(reverse("webhook-settings:secret", args=[endpoint.pk]), {"secret": "whsec_" + "n" * 32})
    page = logged_in.get(detail).content.decode()
    assert "The signing secret does not match." not in page and "1 × wrong or missing signature" in page
    bare = make_endpoint(team, name="Bare", secret="")
    page = logged_in.get(reverse("webhook-settings:detail", args=[bare.pk])).content.decode()
    assert "No signing secret is saved yet" in page and "does not match" not in page


def test_a_stale_request_matched_the_secret_so_it_never_says_the_secret_does_not_match(
    logged_in, endpoint, post_webhook
):
    """Stripe's library checks the signature before the time: a request refused as too old was signed with the
    saved secret (a replay, or this server's clock is off), and pasting the secret again would change nothing."""
    body = fixture_text("pay/invoice.payment_failed.json")
    old = int(timezone.now().timestamp()) - 3600
    assert post_webhook(endpoint, body, signature=sign(body, timestamp=old)).status_code == 400
    detail = reverse("webhook-settings:detail", args=[endpoint.pk])
    page = html.unescape(logged_in.get(detail).content.decode())
    assert "1 × signature too old" in page and "Timestamp outside the tolerance zone" in page
    assert "The signing secret does not match." not in page
    # A request signed with another secret after it: not every request failed the match, the stale one passed it.
    assert post_webhook(endpoint, body, secret="whsec_not_the_one").status_code == 400
    page = html.unescape(logged_in.get(detail).content.decode())
    assert "1 × wrong or missing signature, 1 × signature too old" in page
    assert "The signing secret does not match." not in page
