"""A brand-new user, in a real browser, from sign-up to the email a loop sent, through the UI only.

Sign up → Settings → Stripe: add an endpoint, its signing secret (a bad one first), the events and the
trigger name → Loops: "Stripe - Payment Failed" from the gallery, activated → Send test event → the
contact, the event, the webhook log and the email the loop sent, and that email in a real SMTP inbox.
Screenshots of every page go to test-artifacts/browser/.
"""

import re
import secrets

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import DESKTOP, PHONE, POLL_SECONDS, reload_until
from webhooks.stripe_events import SUPPORTED_EVENTS

pytestmark = [pytest.mark.django_db(transaction=True)]

EMAIL = "ada@lovelace.test"  # the test event is sent for the current user's email
SUBJECT = "Your payment of $19.00 didn't go through"  # the template's first email, for the sample's $19.00


def nav(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()


def status_message(page: Page, text: str) -> None:
    expect(page.get_by_role("status").filter(has_text=text)).to_be_visible()


def at_phone_width(page: Page, shots, name: str) -> None:
    page.set_viewport_size(PHONE)
    shots(page, f"{name}-phone")
    page.set_viewport_size(DESKTOP)


def test_new_user_connects_stripe_activates_a_loop_and_sees_the_email_it_sent(page: Page, live_server, pipeline, shots):
    inbox = pipeline

    # Sign up: it creates the user's team.
    page.goto(live_server.url + "/signup/")
    shots(page, "signup")
    page.get_by_label("Username", exact=True).fill("ada")
    page.get_by_label("Email", exact=True).fill(EMAIL)
    page.get_by_label("Password", exact=True).fill("Analytical-Engine-1843")
    page.get_by_label("Password confirmation", exact=True).fill("Analytical-Engine-1843")
    page.get_by_label("Team name", exact=True).fill("Analytical Engines")
    page.get_by_role("button", name="Sign up", exact=True).click()
    status_message(page, "Welcome to LoopSync! Analytical Engines is ready.")
    expect(page.get_by_role("heading", name="Analytical Engines", exact=True)).to_be_visible()
    shots(page, "dashboard")

    # Settings → Incoming webhooks → Stripe: add an endpoint.
    nav(page, "Settings")
    expect(page).to_have_url(live_server.url + "/settings/webhooks/stripe/")
    expect(page.get_by_text("Settings / Incoming webhooks /")).to_be_visible()
    expect(page.get_by_role("heading", name="Stripe", exact=True)).to_be_visible()
    shots(page, "stripe-endpoints-empty")
    page.get_by_role("link", name="Add endpoint", exact=True).click()
    page.get_by_label("Name", exact=True).fill("Main account")
    shots(page, "stripe-endpoint-new")
    page.get_by_role("button", name="Create endpoint", exact=True).click()
    status_message(page, "Endpoint created.")
    expect(page.get_by_role("heading", name="Main account", exact=True)).to_be_visible()
    endpoint_url = page.url
    assert re.fullmatch(rf"{re.escape(live_server.url)}/settings/webhooks/stripe/\d+/", endpoint_url)
    expect(page.get_by_label("Endpoint URL", exact=True)).to_have_value(
        re.compile(rf"^{re.escape(live_server.url)}/webhooks/stripe/[0-9a-f-]{{36}}/$")
    )
    expect(page.get_by_text("Not set yet")).to_be_visible()
    shots(page, "stripe-endpoint-created")

    # A bad signing secret is refused, and nothing is saved.
    secret_field = page.get_by_label("Signing secret", exact=True)
    secret_field.fill("nope")
    page.get_by_role("button", name="Save secret", exact=True).click()
    expect(page.get_by_text("A Stripe signing secret starts with whsec_", exact=False)).to_be_visible()
    expect(page.get_by_text("Not set yet")).to_be_visible()
    expect(page.get_by_label("Signing secret", exact=True)).to_have_value("")  # never echoed back
    shots(page, "stripe-secret-refused")
    page.goto(endpoint_url)
    expect(page.get_by_text("Not set yet")).to_be_visible()

    # A good one is saved and from then on shown masked only.
    secret = "whsec_" + secrets.token_hex(16)
    page.get_by_label("Signing secret", exact=True).fill(secret)
    page.get_by_role("button", name="Save secret", exact=True).click()
    hint = f"whsec_…{secret[-4:]}"
    status_message(page, f"Signing secret saved ({hint}).")
    expect(page.get_by_text(f"Saved: {hint}.")).to_be_visible()
    assert secret not in page.content()
    shots(page, "stripe-secret-saved")

    # Accept every supported type; invoice.payment_failed fires failedPayment.
    checkboxes = page.get_by_role("checkbox", name=re.compile(r"^Accept "))
    expect(checkboxes).to_have_count(len(SUPPORTED_EVENTS))
    for checkbox in checkboxes.all():
        checkbox.check()
    page.get_by_label("Event for invoice.payment_failed", exact=True).fill("failedPayment")
    page.get_by_role("button", name="Save event settings", exact=True).click()
    status_message(page, "Event settings saved.")
    for checkbox in checkboxes.all():
        expect(checkbox).to_be_checked()
    expect(page.get_by_label("Event for invoice.payment_failed", exact=True)).to_have_value("failedPayment")
    shots(page, "stripe-events-saved")

    # Loops → New loop → "Stripe - Payment Failed" → Activate.
    nav(page, "Loops")
    expect(page.get_by_role("heading", name="Loops", exact=True)).to_be_visible()
    shots(page, "loops-empty")
    page.get_by_role("link", name="New loop", exact=True).click()
    card = page.locator("form").filter(has=page.get_by_role("heading", name="Stripe - Payment Failed", exact=True))
    expect(card).to_be_visible()
    shots(page, "loop-gallery")
    card.get_by_role("button", name="Use this template", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile(r"^Stripe - Payment Failed"))).to_be_visible()
    shots(page, "loop-draft")
    activate = page.get_by_role("button", name="Activate", exact=True)
    activate.click()
    expect(page.get_by_role("main").get_by_text("Active", exact=True)).to_be_visible()  # its status
    expect(activate).to_have_count(0)
    shots(page, "loop-active")
    nav(page, "Loops")
    loop_row = page.get_by_role("row").filter(has=page.get_by_role("link", name="Stripe - Payment Failed", exact=True))
    expect(loop_row.get_by_text("Active", exact=True)).to_be_visible()
    shots(page, "loops-list")

    # Back on the endpoint: send a test invoice.payment_failed and wait for what happened to it. The result
    # region polls (htmx) until a worker has processed the delivery.
    nav(page, "Settings")
    page.get_by_role("link", name="Main account", exact=True).click()
    expect(page).to_have_url(endpoint_url)
    payment_failed = page.get_by_role("row").filter(has=page.get_by_label("Accept invoice.payment_failed", exact=True))
    payment_failed.get_by_role("button", name="Send test event", exact=True).click()
    status_message(page, "Test invoice.payment_failed sent.")
    result = page.locator("#test-result")
    expect(result.get_by_text("Processed", exact=True)).to_be_visible(timeout=POLL_SECONDS * 1000)
    expect(result.get_by_role("link", name=EMAIL, exact=True)).to_be_visible()
    expect(result.get_by_role("link", name="failedPayment", exact=True)).to_be_visible()
    expect(result.get_by_role("listitem").filter(has_text="Stripe - Payment Failed")).to_be_visible()
    shots(page, "stripe-test-event-processed")
    at_phone_width(page, shots, "stripe-endpoint")

    # The Audience has the contact, as test data: a test event never changes live data.
    nav(page, "Audience")
    expect(page.get_by_role("link", name=EMAIL, exact=True)).to_have_count(0)
    mode_switch = page.get_by_role("navigation", name="Live or test data")
    mode_switch.get_by_role("link", name="Test data", exact=True).click()
    expect(page.get_by_role("link", name=EMAIL, exact=True)).to_be_visible()
    shots(page, "audience-test-data")
    at_phone_width(page, shots, "audience")

    # The Events page has the event, as test data too.
    nav(page, "Events")
    page.get_by_role("navigation", name="Live or test data").get_by_role("link", name="Test data", exact=True).click()
    event_row = page.get_by_role("row").filter(has=page.get_by_role("link", name="failedPayment", exact=True))
    expect(event_row.get_by_role("link", name=EMAIL, exact=True)).to_be_visible()
    shots(page, "events")

    # The endpoint's webhook log has the delivery, processed.
    page.get_by_role("navigation", name="Events").get_by_role("link", name="Webhook log", exact=True).click()
    # With a single endpoint the tab goes straight to its log.
    expect(page).to_have_url(re.compile(rf"^{re.escape(live_server.url)}/events/webhooks/endpoints/\d+/$"))
    expect(page.get_by_role("heading", name="Main account", exact=True)).to_be_visible()
    delivery_row = page.get_by_role("row").filter(
        has=page.get_by_role("link", name="invoice.payment_failed", exact=True)
    )
    expect(delivery_row).to_have_count(1)
    expect(delivery_row.get_by_text("Processed", exact=True)).to_be_visible()
    shots(page, "webhook-log")
    delivery_row.get_by_role("link", name="invoice.payment_failed", exact=True).click()
    expect(page.get_by_role("definition").get_by_text("Processed", exact=True)).to_be_visible()  # its status
    expect(page.locator("pre.payload")).to_contain_text(EMAIL)
    shots(page, "webhook-delivery")

    # The contact's page lists the email the loop sent (a worker sends it after the event: reload until sent):
    # test-mode email goes to the team's members, and this is the owner's own address.
    nav(page, "Audience")
    page.get_by_role("navigation", name="Live or test data").get_by_role("link", name="Test data", exact=True).click()
    page.get_by_role("link", name=EMAIL, exact=True).click()
    expect(page.get_by_role("heading", name=f"{EMAIL} Test data", exact=True)).to_be_visible()
    email_row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=SUBJECT, exact=True))
    reload_until(page, email_row.get_by_role("cell", name="Sent", exact=True))
    expect(page.get_by_role("row").filter(has_text="Stripe - Payment Failed")).to_be_visible()
    shots(page, "contact")

    # ... and it really went out, over SMTP.
    assert [(m["X-Envelope-To"], m["Subject"]) for m in inbox.messages] == [(EMAIL, SUBJECT)]

    # The dashboard counts live data; the test event's contact and email are counted apart, as test data.
    nav(page, "Dashboard")
    expect(page.get_by_text("0 emails sent")).to_be_visible()
    expect(page.get_by_text("Test data, counted apart: 1 test contact, 1 test email sent")).to_be_visible()
    shots(page, "dashboard-after")
