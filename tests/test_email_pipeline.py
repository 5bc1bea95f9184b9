"""A signed Stripe webhook, over HTTP, through a real worker on Redis, into a real SMTP inbox."""

import re
import urllib.request

import pytest

from conftest import fixture_text
from contacts.models import Contact
from loops.models import EmailMessage
from tests.test_pipeline import post, wait_for

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_payment_failed_webhook_ends_as_one_email_with_a_working_unsubscribe_link(
    postgres, celery_worker, live_server, endpoint, make_loop, smtp_server, settings
):
    settings.SITE_URL = live_server.url
    make_loop(endpoint.team, "stripe-payment-failed")
    body = fixture_text("pay/invoice.payment_failed.json")
    assert post(live_server, endpoint, body)[0] == 200
    assert post(live_server, endpoint, body)[1] == {"status": "duplicate"}  # Stripe sends it again

    wait_for(lambda: EmailMessage.objects.filter(status="sent").exists())
    [received] = smtp_server.messages
    assert received["X-Envelope-To"] == "customer@example.org"
    assert received["Subject"] == "Your payment of $249.00 didn't go through"
    text = received.get_body(preferencelist=("plain",)).get_content()
    assert "Hi Example," in text and "$249.00" in text
    assert "Update payment method: https://invoice.stripe.com/" in text

    link = re.search(r"Unsubscribe: (\S+)", text).group(1)
    assert link.startswith(live_server.url + "/unsubscribe/")
    with urllib.request.urlopen(link, timeout=10) as page:  # noqa: S310 - the test's own server
        assert "emails to <strong>" in page.read().decode()
    request = urllib.request.Request(link, data=b"List-Unsubscribe=One-Click", method="POST")
    with urllib.request.urlopen(request, timeout=10) as page:  # noqa: S310
        assert page.status == 200
    assert Contact.objects.get(email="customer@example.org").subscribed is False
    assert EmailMessage.objects.count() == 1
