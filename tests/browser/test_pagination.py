"""Every list, paged to its end in a real browser with a filter on: the Audience ("Show more", with htmx and
as a plain link without JavaScript), Events and the Webhook log ("Older"). Each holds more than two pages of
rows the filter keeps, and rows it leaves out; every kept row must show exactly once, in order, and no other.
Screenshots of each last page go to test-artifacts/browser/pagination/.
"""

import re

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Browser, Page, expect

from accounts.models import Membership
from accounts.services import membership_add, team_create
from conftest import SECRET
from tests.browser.conftest import DESKTOP
from tests.paging import (
    AUDIENCE_FILTER,
    EVENTS_FILTER,
    KEPT,
    RUNS_LOOP,
    audience_fill,
    events_fill,
    log_fill,
    runs_fill,
)
from webhooks.services import endpoint_create

pytestmark = [pytest.mark.django_db(transaction=True)]

SHOTS_FOLDER = "pagination"
USERNAME, PASSWORD = "edsger", "Shortest-Path-1959"


@pytest.fixture
def lists(pipeline):
    """A team whose three lists run past two pages, and its owner: made before Playwright starts (see the
    conftest's docstring), so `page` below asks for it first. The user logs in through the log-in page."""
    team = team_create(name="Mathematisch Centrum")
    user = get_user_model().objects.create_user(USERNAME, "edsger@example.org", PASSWORD)
    membership_add(team=team, user=user, role=Membership.Role.OWNER)
    endpoint = endpoint_create(team=team, secret=SECRET, name="Stripe live")
    return {
        "audience": audience_fill(team=team),
        "events": events_fill(team=team),
        "log": log_fill(endpoint=endpoint),
        "runs": runs_fill(team=team),
    }


@pytest.fixture
def page(lists, page):
    return page


def log_in(page: Page, base_url: str) -> None:
    page.goto(base_url + "/login/")
    page.get_by_label("Username", exact=True).fill(USERNAME)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()


def hrefs(page: Page, selector: str) -> list[int]:
    """The ids in the links matching `selector`, in page order."""
    links = page.locator(selector).evaluate_all("links => links.map(a => a.getAttribute('href'))")
    return [int(re.search(r"/(\d+)/$", href)[1]) for href in links]


def follow(page: Page, name: str) -> None:
    """Click the pager's link `name` and wait until its page has loaded (keyset links differ page to page)."""
    link = page.get_by_role("navigation", name="Pages").get_by_role("link", name=name, exact=True)
    target = link.get_attribute("href")
    link.click()
    expect(page).to_have_url(re.compile(re.escape(target) + "$"))


def filter_audience(page: Page) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audience", exact=True).click()
    page.get_by_label("Search", exact=True).fill(AUDIENCE_FILTER["q"])
    page.get_by_label("Source", exact=True).select_option(AUDIENCE_FILTER["source"])
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(page.get_by_label("Search", exact=True)).to_have_value(AUDIENCE_FILTER["q"])


def expect_audience_filter_shown(page: Page) -> None:
    expect(page.get_by_label("Search", exact=True)).to_have_value(AUDIENCE_FILTER["q"])
    expect(page.get_by_label("Source", exact=True)).to_have_value(AUDIENCE_FILTER["source"])


def audience_emails(page: Page) -> list[str]:
    """The email column (the first is the row's tick box for bulk actions)."""
    return page.locator("#audience-rows tr:not(.more-row) td:nth-child(2)").all_inner_texts()


def walk_audience_with_htmx(page: Page, expected: list[str], shots) -> None:
    filter_audience(page)
    rows = page.locator("#audience-rows tr:not(.more-row)")
    expect(rows).to_have_count(50)
    url = page.url
    show_more = page.get_by_role("link", name="Show more", exact=True)
    for shown in (100, KEPT):
        show_more.click()
        expect(rows).to_have_count(shown)  # the next rows, added under the others
    expect(show_more).to_have_count(0)
    assert page.url == url  # swapped in place, not a new page
    assert audience_emails(page) == expected
    # One page still: one table with one header, one main navigation, one heading, the filter as set.
    expect(page.locator("table")).to_have_count(1)
    expect(page.locator("thead")).to_have_count(1)
    expect(page.get_by_role("navigation", name="Main")).to_have_count(1)
    expect(page.get_by_role("heading", name="Audience", exact=True)).to_have_count(1)
    expect_audience_filter_shown(page)
    shots(page, "audience-last")


def walk_audience_without_javascript(browser: Browser, base_url: str, expected: list[str], shots) -> None:
    context = browser.new_context(viewport=DESKTOP, java_script_enabled=False)
    page = context.new_page()
    try:
        log_in(page, base_url)
        filter_audience(page)
        seen = audience_emails(page)
        show_more = page.get_by_role("link", name="Show more", exact=True)
        while show_more.count():
            href = show_more.get_attribute("href")
            show_more.click()  # a plain link: the next page, on its own
            page.wait_for_url(lambda url, href=href: url.endswith(href))
            expect_audience_filter_shown(page)
            seen += audience_emails(page)
        assert seen == expected
        expect(page.locator("thead")).to_have_count(1)
        shots(page, "audience-last-no-js")
        page.get_by_role("link", name="Back to the first page", exact=True).click()
        expect(page.locator("#audience-rows tr:not(.more-row)").first).to_have_text(re.compile(expected[0]))
        expect_audience_filter_shown(page)
    finally:
        context.close()


def walk_events(page: Page, expected: list[int], shots) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Events", exact=True).click()
    page.get_by_label("Event name", exact=True).select_option(EVENTS_FILTER["name"])
    page.get_by_label("Contact", exact=True).fill(EVENTS_FILTER["contact"])
    page.get_by_role("button", name="Filter", exact=True).click()
    seen = []
    for number in (1, 2, 3):
        expect(page.get_by_label("Event name", exact=True)).to_have_value(EVENTS_FILTER["name"])
        expect(page.get_by_label("Contact", exact=True)).to_have_value(EVENTS_FILTER["contact"])
        seen += hrefs(page, "tbody tr td:first-child a")
        if number < 3:
            follow(page, "Older")
    expect(page.get_by_role("link", name="Older", exact=True)).to_have_count(0)
    expect(page.get_by_text("No older ones.", exact=True)).to_be_visible()
    assert seen == expected
    shots(page, "events-last")
    follow(page, "Newer")
    assert hrefs(page, "tbody tr td:first-child a") == expected[50:100]


def walk_older(page: Page, status: str, check_filter) -> list[int]:
    """Three pages by "Older" (50, 50 and the last 30), each row of status `status`, the filter still shown on
    each (`check_filter`); the ids its rows link to, in order."""
    seen = []
    for number in (1, 2, 3):
        check_filter()
        expect(page.locator("tbody .status")).to_have_text([status] * (50 if number < 3 else KEPT - 100))
        seen += hrefs(page, "tbody tr td:first-child a")
        if number < 3:
            follow(page, "Older")
    expect(page.get_by_role("link", name="Older", exact=True)).to_have_count(0)
    return seen


def walk_webhook_log(page: Page, expected: list[int], shots) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Events", exact=True).click()
    page.get_by_role("link", name="Webhook log", exact=True).click()  # the only endpoint's log
    page.get_by_label("Status", exact=True).select_option(label="Failed")
    page.get_by_role("button", name="Filter", exact=True).click()

    def check_filter():
        expect(page.get_by_label("Status", exact=True)).to_have_value("failed")

    assert walk_older(page, "Failed", check_filter) == expected
    shots(page, "log-last")


def walk_runs(page: Page, expected: list[int], shots) -> None:
    """Loops → the loop → its waiting runs (the link on the loop's page) → at its second step → Older, Older."""
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Loops", exact=True).click()
    page.get_by_role("link", name=RUNS_LOOP, exact=True).click()
    page.get_by_role("link", name=re.compile(r"^\d+ waiting$")).click()
    page.get_by_label("Step", exact=True).select_option(label="2. Timer")
    page.get_by_role("button", name="Filter", exact=True).click()

    def check_filter():
        expect(page.get_by_label("Status", exact=True)).to_have_value("waiting")
        expect(page.get_by_label("Step", exact=True)).to_have_value(re.compile(r"^\d+$"))

    assert walk_older(page, "Waiting", check_filter) == expected
    shots(page, "runs-last")


# One test, not five: the `shots` fixture empties the folder at the start of each test.
def test_every_list_pages_to_its_end_with_a_filter_on_each_row_once(
    page: Page, chromium_browser: Browser, live_server, lists, shots
):
    log_in(page, live_server.url)
    walk_audience_with_htmx(page, lists["audience"], shots)
    walk_events(page, lists["events"], shots)
    walk_webhook_log(page, lists["log"], shots)
    walk_runs(page, lists["runs"], shots)
    walk_audience_without_javascript(chromium_browser, live_server.url, lists["audience"], shots)
