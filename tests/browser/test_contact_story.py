"""A contact's story and an endpoint's health, in a real browser, with real Stripe signatures sent over HTTP.

1. A signed invoice.payment_failed reaches a new endpoint, the pipeline makes it a contact, an event, a run of
   the activated "Stripe - Payment Failed" loop and the email it sent; every kind of link on the contact's
   activity timeline leads to its page, and those pages lead back.
2. An endpoint whose requests are signed with another secret shows it in its health panel: the last refused
   request with its reason, the count of the last 24 hours and the "secret does not match" banner; a correctly
   signed request makes the banner go and the last delivery show, and a stale one (signed with the right secret)
   is counted without bringing the banner back.
Screenshots go to test-artifacts/browser/contact-story/.
"""

import json
import re
import secrets
import time
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from conftest import fixture_text, sign
from tests.browser.conftest import reload_until, sign_up

pytestmark = [pytest.mark.django_db(transaction=True)]

SHOTS_FOLDER = "contact-story"
FAILED = "pay/invoice.payment_failed.json"  # a live-mode event, for customer@example.org, $249.00
CUSTOMER = "customer@example.org"
EVENT_ID = "evt_fixture_pay_invoice_payment_failed"
SUBJECT = "Your payment of $249.00 didn't go through"  # the template's first email, for the fixture's amount
LOOP = "Stripe - Payment Failed"


def post_webhook(url: str, body: str, signature: str) -> tuple[int, dict]:
    """POST a body to a receive URL over HTTP, as Stripe does: the status and the JSON answer."""
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json", "Stripe-Signature": signature}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # the test's own server
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def field(scope, term: str):
    """The value of a page's field: the <dd> after the <dt> that reads `term`."""
    return scope.locator(f"xpath=.//dt[normalize-space()='{term}']/following-sibling::dd[1]")


def endpoint_create(page: Page, live_server, secret: str) -> str:
    """Settings → Stripe → Add endpoint (a live one, the default), its signing secret saved: its receive URL."""
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings", exact=True).click()
    page.get_by_role("link", name="Add endpoint", exact=True).click()
    page.get_by_label("Name", exact=True).fill("Main account")
    page.get_by_role("button", name="Create endpoint", exact=True).click()
    expect(page.get_by_role("heading", name="Main account", exact=True)).to_be_visible()
    no_secret = page.get_by_role("note", name="No signing secret yet")
    expect(no_secret).to_be_visible()
    receive_url = page.get_by_label("Endpoint URL", exact=True).input_value()
    assert re.fullmatch(rf"{re.escape(live_server.url)}/webhooks/stripe/[0-9a-f-]{{36}}/", receive_url)
    page.get_by_label("Signing secret", exact=True).fill(secret)
    page.get_by_role("button", name="Save secret", exact=True).click()
    expect(page.get_by_text(f"Saved: whsec_…{secret[-4:]}.")).to_be_visible()
    expect(no_secret).to_have_count(0)
    return receive_url


def test_every_link_of_a_contacts_timeline_leads_to_its_page_and_back(page: Page, live_server, pipeline, shots):
    inbox = pipeline
    sign_up(page, live_server, username="grace", email="grace@hopper.test", password="Cobol-1959!", team="Hoppers")
    secret = "whsec_" + secrets.token_hex(16)
    receive_url = endpoint_create(page, live_server, secret)
    # A new endpoint fires what the seeded templates listen for: invoice.payment_failed → failedPayment.
    expect(page.get_by_label("Event for invoice.payment_failed", exact=True)).to_have_value("failedPayment")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Loops", exact=True).click()
    page.get_by_role("link", name="New loop", exact=True).click()
    card = page.locator("form").filter(has=page.get_by_role("heading", name=LOOP, exact=True))
    card.get_by_role("button", name="Use this template", exact=True).click()
    page.get_by_role("button", name="Activate", exact=True).click()
    expect(page.get_by_role("main").get_by_text("Active", exact=True)).to_be_visible()
    loop_url = page.url

    body = fixture_text(FAILED)
    assert post_webhook(receive_url, body, sign(body, secret)) == (200, {"status": "queued"})

    # The pipeline (a worker, with a broker) makes it a contact, an event, a run and an email: reload until sent.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audience", exact=True).click()
    reload_until(page, page.get_by_role("link", name=CUSTOMER, exact=True))
    page.get_by_role("link", name=CUSTOMER, exact=True).click()
    contact_url = page.url
    assert re.fullmatch(rf"{re.escape(live_server.url)}/audience/\d+/", contact_url)
    expect(page.get_by_role("heading", name="Example Customer", exact=True)).to_be_visible()  # the fixture's name
    activity = page.locator("section.card").filter(has=page.get_by_role("heading", name="Activity", exact=True))
    email_item = activity.get_by_role("listitem").filter(has=page.get_by_role("link", name=f"Email “{SUBJECT}”"))
    reload_until(page, email_item.filter(has_text="· Sent"))
    links = {
        "delivery": activity.get_by_role("link", name="Stripe webhook invoice.payment_failed", exact=True),
        "event": activity.get_by_role("link", name="Event failedPayment", exact=True),
        "run": activity.get_by_role("link", name=f"Entered “{LOOP}”", exact=True),
        "step": activity.get_by_role("link", name=f"{LOOP}: Send email", exact=True),
        "email": activity.get_by_role("link", name=f"Email “{SUBJECT}”", exact=True),
    }
    for link in links.values():
        expect(link).to_have_count(1)
    shots(page, "contact")

    # The webhook: its page names it, and leads to the contact, the event and the loop run it led to.
    links["delivery"].click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(live_server.url)}/events/webhooks/deliveries/\d+/$"))
    delivery_url = page.url
    expect(page.get_by_role("heading", name="invoice.payment_failed", exact=True)).to_be_visible()
    expect(field(page, "Stripe event")).to_contain_text(EVENT_ID)
    expect(field(page, "Status")).to_have_text("Processed")
    led_to = page.get_by_role("region", name="What it led to")
    shots(page, "delivery")
    led_to.get_by_role("link", name=CUSTOMER, exact=True).click()
    expect(page).to_have_url(contact_url)
    page.go_back()
    led_to.get_by_role("link", name=LOOP, exact=True).click()
    expect(page.get_by_role("heading", name=f"Runs of {LOOP}", exact=True)).to_be_visible()
    run_row = page.get_by_role("row").filter(has=page.get_by_role("link", name=CUSTOMER, exact=True))
    expect(run_row.get_by_text("Waiting", exact=True)).to_be_visible()
    run_row.get_by_role("link", name=CUSTOMER, exact=True).click()
    expect(page).to_have_url(contact_url)
    page.goto(delivery_url)
    led_to.get_by_role("link", name="failedPayment", exact=True).click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(live_server.url)}/events/\d+/$"))
    event_url = page.url

    # The event, reached from the timeline too: its page names it and its contact, and leads back to its webhook.
    page.goto(contact_url)
    links["event"].click()
    expect(page).to_have_url(event_url)
    expect(page.get_by_role("heading", name="failedPayment", exact=True)).to_be_visible()
    expect(field(page, "Contact")).to_have_text(CUSTOMER)
    expect(field(page, "Idempotency key")).to_contain_text(EVENT_ID)
    expect(page.get_by_role("row").filter(has_text=LOOP)).to_be_visible()  # the loop it started
    shots(page, "event")
    page.get_by_role("link", name="the Stripe webhook it came from", exact=True).click()
    found = page.get_by_role("row").filter(has=page.get_by_role("cell", name=EVENT_ID, exact=True))
    expect(found).to_have_count(1)
    found.get_by_role("link", name="invoice.payment_failed", exact=True).click()
    expect(page).to_have_url(delivery_url)
    page.goto(event_url)
    page.get_by_role("main").get_by_role("link", name=CUSTOMER, exact=True).click()
    expect(page).to_have_url(contact_url)

    # The run and the step it passed: the loop's page.
    for kind in ("run", "step"):
        links[kind].click()
        expect(page).to_have_url(loop_url)
        expect(page.get_by_role("heading", name=re.compile(rf"^{re.escape(LOOP)}"))).to_be_visible()
        expect(page.get_by_role("link", name="1 waiting", exact=True)).to_be_visible()  # its run, waiting for a payment
        page.go_back()
        expect(page).to_have_url(contact_url)

    # The email, as it was sent: its page names it, its contact, its loop and the event that started it.
    links["email"].click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(live_server.url)}/emails/\d+/$"))
    expect(page.get_by_role("heading", name=SUBJECT, exact=True)).to_be_visible()
    fields = page.locator("dl.fields")
    expect(field(page, "To")).to_have_text(CUSTOMER)
    expect(field(page, "Status")).to_have_text("Sent")
    expect(page.frame_locator("iframe.email-frame").get_by_text("didn't go through", exact=False)).to_be_visible()
    shots(page, "email")
    fields.get_by_role("link", name="failedPayment", exact=True).click()
    expect(page).to_have_url(event_url)
    page.go_back()
    fields.get_by_role("link", name=LOOP, exact=True).click()
    expect(page).to_have_url(loop_url)
    page.go_back()
    page.locator(".crumbs").get_by_role("link", name=CUSTOMER, exact=True).click()
    expect(page).to_have_url(contact_url)

    # ... and it really went out, over SMTP, to the customer (a live-mode contact).
    assert [(m["X-Envelope-To"], m["Subject"]) for m in inbox.messages] == [(CUSTOMER, SUBJECT)]


def test_the_health_panel_shows_a_wrong_secret_until_a_signed_request_arrives(page: Page, live_server, shots):
    sign_up(page, live_server, username="alan", email="alan@turing.test", password="Enigma-1936!", team="Bletchley")
    secret = "whsec_" + secrets.token_hex(16)
    receive_url = endpoint_create(page, live_server, secret)
    health = page.get_by_role("region", name="Health")

    expect(field(health, "Last delivery received")).to_have_text("none yet")
    expect(field(health, "Refused in the last 24 hours")).to_have_text("none")
    banner = page.get_by_role("alert", name="The secret does not match")
    expect(banner).to_have_count(0)

    # Signed with another secret (another endpoint's, say): refused, counted with its reason, and the banner says so.
    body = fixture_text(FAILED)
    status, refused = post_webhook(receive_url, body, sign(body, "whsec_" + secrets.token_hex(16)))
    assert (status, refused) == (
        400,
        {"error": "Invalid signature: No signatures found matching the expected signature for payload"},
    )
    page.reload()
    expect(field(health, "Last refused request")).to_contain_text(refused["error"])
    expect(field(health, "Last refused request").locator("time")).to_have_count(1)
    expect(field(health, "Refused in the last 24 hours")).to_have_text("1 × wrong or missing signature")
    expect(field(health, "Last delivery received")).to_have_text("none yet")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("The signing secret does not match.")
    shots(page, "secret-mismatch")

    # One request signed with the saved secret: stored, and the banner goes.
    assert post_webhook(receive_url, body, sign(body, secret)) == (200, {"status": "queued"})
    page.reload()
    expect(banner).to_have_count(0)
    expect(field(health, "Last delivery received").locator("time")).to_have_count(1)
    expect(field(health, "Last delivery received").get_by_role("link", name="webhook log", exact=True)).to_be_visible()
    expect(field(health, "Refused in the last 24 hours")).to_have_text("1 × wrong or missing signature")
    shots(page, "secret-matches")

    # Signed with the saved secret, but an hour ago (a replay): refused as too old, and still no banner, since it
    # matched the secret.
    status, stale = post_webhook(receive_url, body, sign(body, secret, timestamp=int(time.time()) - 3600))
    assert status == 400 and stale["error"].startswith("Invalid signature: Timestamp outside the tolerance zone")
    page.reload()
    expect(field(health, "Last refused request")).to_contain_text(stale["error"])
    expect(field(health, "Refused in the last 24 hours")).to_have_text(
        "1 × wrong or missing signature, 1 × signature too old"
    )
    expect(banner).to_have_count(0)
    shots(page, "stale")

    # The panel's link leads to the endpoint's log, where the delivery is processed (the worker is done with it).
    field(health, "Last delivery received").get_by_role("link", name="webhook log", exact=True).click()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="invoice.payment_failed", exact=True))
    expect(row).to_have_count(1)
    reload_until(page, row.get_by_text("Processed", exact=True))
