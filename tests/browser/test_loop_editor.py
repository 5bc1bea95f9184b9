"""The loop editor in a real browser: htmx's live preview follows what is typed, a Liquid error shows in
place, "Send a test to me" reaches a real SMTP inbox, and steps are added, reordered and removed.
Screenshots go to test-artifacts/browser/editor/.
"""

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.django_db(transaction=True)]

SHOTS_FOLDER = "editor"
EMAIL = "grace@hopper.test"


def test_the_loop_editor_previews_live_tests_and_reorders(page: Page, live_server, pipeline, shots):
    inbox = pipeline
    page.goto(live_server.url + "/signup/")
    page.get_by_label("Username", exact=True).fill("grace")
    page.get_by_label("Email", exact=True).fill(EMAIL)
    page.get_by_label("Password", exact=True).fill("Compiler-A0-1952")
    page.get_by_label("Password confirmation", exact=True).fill("Compiler-A0-1952")
    page.get_by_label("Team name", exact=True).fill("Harvard Mark I")
    page.get_by_role("button", name="Sign up", exact=True).click()

    page.goto(live_server.url + "/loops/new/")
    page.locator("form", has_text="Stripe - Payment Failed").get_by_role("button").click()
    expect(page.get_by_role("heading", name="Stripe - Payment Failed Draft")).to_be_visible()
    expect(page.get_by_label("Event name", exact=True)).to_have_value("failedPayment")
    shots(page, "loop")

    # An email step: the preview follows the form, unsaved.
    page.get_by_role("link", name="Edit step 1", exact=True).click()
    preview_subject = page.get_by_test_id("preview-subject")
    expect(preview_subject).to_have_text("Your payment of $25.00 didn't go through")
    page.get_by_label("Subject", exact=True).fill("{{ contact.first_name }}, {{ event.amount_formatted }} is due")
    expect(preview_subject).to_have_text("Ada, $25.00 is due")
    frame = page.frame_locator("iframe.email-frame")
    page.get_by_label("Body", exact=True).fill("Hello **{{ contact.first_name }}**")
    expect(frame.locator("strong")).to_have_text("Ada")
    shots(page, "preview")
    page.get_by_label("Body", exact=True).fill("Hello {% if contact.first_name %}")
    expect(page.get_by_role("alert").filter(has_text="The preview cannot render")).to_be_visible()
    shots(page, "preview-error")
    page.get_by_role("button", name="Send a test to me", exact=True).click()
    expect(page.locator("#test-result")).to_contain_text("Fix the errors in the email first")
    page.get_by_label("Body", exact=True).fill("Hello **{{ contact.first_name }}**, this is a test.")
    page.get_by_role("button", name="Send a test to me", exact=True).click()
    expect(page.locator("#test-result")).to_have_text(f"Test email sent to {EMAIL}.")
    shots(page, "test-sent")
    [test_email] = inbox.messages
    assert test_email["To"] == EMAIL and test_email["Subject"] == "[Test] Ada, $25.00 is due"
    page.get_by_role("button", name="Save step", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="Send email saved.")).to_be_visible()

    # Add a timer (a zero wait is refused), move it up, remove it.
    page.get_by_label("Kind of step: add a step after step 3", exact=True).select_option("timer")
    page.get_by_role("button", name="Add a step after step 3", exact=True).click()
    page.get_by_label("Wait", exact=True).fill("0")
    page.get_by_role("button", name="Add step", exact=True).click()
    expect(page.get_by_text("A timer waits at least 1 day.")).to_be_visible()
    page.get_by_label("Wait", exact=True).fill("2")
    page.get_by_role("button", name="Add step", exact=True).click()
    expect(page.get_by_role("heading", name="4. Timer", exact=True)).to_be_visible()
    page.get_by_role("button", name="Move step 4 up", exact=True).click()
    expect(page.get_by_role("heading", name="3. Timer", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="4. Send email", exact=True)).to_be_visible()
    shots(page, "reordered")
    page.get_by_role("link", name="Remove step 3", exact=True).click()
    page.get_by_role("button", name="Remove step", exact=True).click()
    expect(page.get_by_role("heading", name="3. Send email", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="3. Timer", exact=True)).to_have_count(0)
    page.get_by_role("button", name="Activate", exact=True).click()
    expect(page.get_by_role("heading", name="Stripe - Payment Failed Active")).to_be_visible()
    shots(page, "active")
