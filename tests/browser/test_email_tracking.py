"""An open and a click, recorded from a real rendered email: the "Stripe - Payment Failed" loop sends its first
email through the app's pipeline to a real SMTP server on localhost; Chromium shows that email's HTML exactly as
it arrived (its pixel loads from the live server) and the reader clicks its button, which goes through the signed
redirect to where it points. Then the team's owner sees the open and the click on the email's page (reached from
the contact's timeline) and on the dashboard. Screenshots go to test-artifacts/browser/email-tracking/."""

import re
import time

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.django_db(transaction=True)]

SHOTS_FOLDER = "email-tracking"
USERNAME, PASSWORD = "ada", "pw-tracking-123"
CUSTOMER = "customer@example.org"
SUBJECT = "Your payment of $249.00 didn't go through"
WAIT_SECONDS = 30


@pytest.fixture
def received(pipeline, live_server, make_loop):
    """The loop's email as the SMTP server received it. Set up before the browser starts (see conftest.py): a team
    and its owner, the seeded loop activated, and a failedPayment event whose invoice link is a page of this site
    (the click's destination must not leave the machine)."""
    from django.contrib.auth import get_user_model

    from accounts.models import Membership
    from accounts.services.teams import membership_add, team_create
    from loops.services import event_send

    team = team_create(name="Analytical Engines")
    owner = get_user_model().objects.create_user(USERNAME, "ada@lovelace.test", PASSWORD)
    membership_add(team=team, user=owner, role=Membership.Role.OWNER)
    make_loop(team)
    event_send(
        team=team,
        name="failedPayment",
        email=CUSTOMER,
        contact_fields={"first_name": "Customer"},
        properties={"amount_formatted": "$249.00", "hosted_invoice_url": f"{live_server.url}/healthz"},
    )
    deadline = time.monotonic() + WAIT_SECONDS
    while not pipeline.messages:  # sent by the worker (CI) or in-process (no broker)
        assert time.monotonic() < deadline, "the loop's email never reached the SMTP server"
        time.sleep(0.1)
    [message] = pipeline.messages
    assert message["Subject"] == SUBJECT
    return message.get_body(preferencelist=("html",)).get_content()


def test_an_open_and_a_click_in_a_real_email_show_on_its_page_and_the_dashboard(
    received, page: Page, live_server, shots
):
    # The reader's mail client: the email's HTML as it arrived. Its pixel is an image from this site.
    with page.expect_response(re.compile(r"/e/[\w-]+/o\.gif$")) as pixel:
        page.set_content(received)
    assert pixel.value.status == 200 and pixel.value.headers["content-type"] == "image/gif"
    shots(page, "email-as-received")
    button = page.get_by_role("link", name="Update payment method", exact=True)
    assert "/e/" in (button.get_attribute("href") or "")  # through the click redirect
    button.click()
    expect(page).to_have_url(f"{live_server.url}/healthz")  # where the button points

    page.goto(live_server.url + "/login/")
    page.get_by_label("Username", exact=True).fill(USERNAME)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.get_by_role("heading", name="Analytical Engines", exact=True)).to_be_visible()
    expect(page.get_by_test_id("total-sent")).to_have_text("Sent 1")
    expect(page.get_by_test_id("total-opened")).to_have_text("Opened 1")
    expect(page.get_by_test_id("total-clicked")).to_have_text("Clicked 1")
    expect(page.get_by_test_id("total-bounced")).to_have_text("Bounced 0")
    shots(page, "dashboard")

    page.goto(live_server.url + "/audience/")
    page.get_by_role("link", name=CUSTOMER, exact=True).click()
    timeline = page.locator("ol.timeline.activity")
    expect(timeline.locator("li.activity-open")).to_have_count(1)
    expect(timeline.locator("li.activity-click")).to_contain_text("/healthz")
    shots(page, "contact-timeline")
    timeline.locator("li.activity-click").get_by_role("link", name=f"Clicked “{SUBJECT}”", exact=True).click()

    expect(page.get_by_role("heading", name=SUBJECT, exact=True)).to_be_visible()
    expect(page.get_by_test_id("opens")).to_contain_text("1 time, first on")
    expect(page.get_by_test_id("clicks")).to_contain_text("1 time, first on")
    link_row = page.locator("#tracking table tbody tr")
    expect(link_row).to_have_count(1)
    expect(link_row).to_contain_text(f"{live_server.url}/healthz")
    # Looking at the email here counts nothing: the frame has no pixel, and its button goes straight to the page.
    frame = page.frame_locator("iframe.email-frame")
    expect(frame.get_by_role("link", name="Update payment method", exact=True)).to_have_attribute(
        "href", f"{live_server.url}/healthz"
    )
    page.locator("iframe.email-frame").scroll_into_view_if_needed()  # an iframe out of view is not painted
    shots(page, "email-page")
    page.reload()
    expect(page.get_by_test_id("opens")).to_contain_text("1 time, first on")
