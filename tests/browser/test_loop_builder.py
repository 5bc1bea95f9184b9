"""The visual loop builder in a real browser: a loop built from scratch (a trigger, a branch with three paths,
one with a nested group of rules, an email on each path), activated, and one event per path sent through the
API, each contact getting its path's email in a real SMTP inbox. Screenshots go to
test-artifacts/browser/builder/.
"""

import time

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import htmx_settled, sign_up

pytestmark = [pytest.mark.django_db(transaction=True)]

SHOTS_FOLDER = "builder"
EMAIL_WAIT_SECONDS = 30


def add_email(page: Page, where: str, subject: str) -> None:
    page.get_by_label(f"Kind of step: {where.lower()}", exact=True).select_option("email")
    page.get_by_role("button", name=where, exact=True).click()
    page.get_by_label("Subject", exact=True).fill(subject)
    page.get_by_label("Body", exact=True).fill(f"Hello {{{{ contact.email }}}}: {subject}.")
    page.get_by_role("button", name="Add step", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="Send email added.")).to_be_visible()


def pick_field(page: Page, row: str, field: str, conditions: int) -> None:
    """Pick a rule's field and wait for its row to offer that type's conditions (htmx redraws the row)."""
    htmx_settled(page)
    page.get_by_label(f"{row}: field", exact=True).select_option(field)
    expect(page.get_by_label(f"{row}: condition", exact=True).locator("option")).to_have_count(conditions)


def test_a_branching_loop_built_from_scratch_sends_each_contact_down_its_path(page: Page, live_server, pipeline, shots):
    inbox = pipeline
    sign_up(
        page, live_server, username="barbara", email="barbara@liskov.test", password="Substitution-1987", team="CLU"
    )
    page.goto(live_server.url + "/loops/new/")
    page.get_by_role("button", name="Start from scratch", exact=True).click()
    expect(page.get_by_role("heading", name="Untitled loop Draft")).to_be_visible()

    # The trigger: the form shows the chosen trigger's fields only.
    page.get_by_label("Name", exact=True).fill("Plan welcome")
    trigger = page.get_by_label("Trigger", exact=True)
    trigger.select_option("list_added")
    expect(page.get_by_label("Mailing list", exact=True)).to_be_visible()
    expect(page.get_by_label("Event name", exact=True)).to_be_hidden()
    trigger.select_option("contact_updated")
    expect(page.get_by_label("Field or property", exact=True)).to_be_visible()
    expect(page.get_by_label("From", exact=True)).to_be_hidden()
    page.get_by_label("Only from a value", exact=True).check()
    expect(page.get_by_label("From", exact=True)).to_be_visible()
    trigger.select_option("event")
    expect(page.get_by_label("Field or property", exact=True)).to_be_hidden()
    page.get_by_label("Event name", exact=True).fill("planChosen")
    expect(page.get_by_label("Key (an event property)", exact=True)).to_be_hidden()
    shots(page, "trigger")
    page.get_by_role("button", name="Save trigger", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="Loop saved.")).to_be_visible()

    # A branch: Pro; Team, or anyone at a trial address in group 2; everyone else.
    page.get_by_label("Kind of step: add a step at the start", exact=True).select_option("branch")
    page.get_by_role("button", name="Add a step at the start", exact=True).click()
    page.get_by_label("Path 1: name", exact=True).fill("Pro")
    pick_field(page, "Path 1 rule 1", "contact.user_group", 7)  # a text field: text conditions only
    expect(page.get_by_label("Path 1: name", exact=True)).to_have_value("Pro")
    page.get_by_label("Path 1 rule 1: condition", exact=True).select_option("equals")
    page.get_by_label("Path 1 rule 1: value", exact=True).fill("pro")
    page.get_by_role("button", name="Add a path", exact=True).click()  # before the catch-all, which stays last
    expect(page.get_by_label("Path 2: name", exact=True)).to_have_value("Path 2")
    expect(page.get_by_label("Path 3: name", exact=True)).to_have_value("Everyone else")
    expect(page.get_by_label("Path 1 rule 1: value", exact=True)).to_have_value("pro")
    page.get_by_label("Path 2: name", exact=True).fill("Team or trial")
    page.get_by_label("Path 2: match", exact=True).select_option("any")
    pick_field(page, "Path 2 rule 1", "contact.user_group", 7)
    page.get_by_label("Path 2 rule 1: condition", exact=True).select_option("equals")
    page.get_by_label("Path 2 rule 1: value", exact=True).fill("team")
    page.get_by_role("button", name="Add a group to path 2", exact=True).click()
    pick_field(page, "Path 2 rule 2.1", "contact.email", 7)
    page.get_by_label("Path 2 rule 2.1: condition", exact=True).select_option("contains")
    page.get_by_label("Path 2 rule 2.1: value", exact=True).fill("@trial.")
    page.get_by_role("button", name="Add a rule to path 2 group 2", exact=True).click()
    pick_field(page, "Path 2 rule 2.2", "contact.subscribed", 2)
    page.get_by_label("Path 2 rule 2.2: condition", exact=True).select_option("is_true")
    expect(page.get_by_label("Path 2 rule 2.2: value", exact=True)).to_be_hidden()  # "is true" takes none
    shots(page, "branch-form")
    page.get_by_role("button", name="Add step", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="Branch added.")).to_be_visible()
    expect(page.get_by_text("Path 2: Team or trial", exact=True)).to_be_visible()

    add_email(page, "Add a step at the start of path 1", "Welcome to Pro")
    add_email(page, "Add a step at the start of path 2", "Welcome, team")
    add_email(page, "Add a step at the start of path 3", "Welcome")
    page.get_by_role("button", name="Activate", exact=True).click()
    expect(page.get_by_role("heading", name="Plan welcome Active")).to_be_visible()
    shots(page, "loop")

    # A developer's app sends the event: one contact for each path.
    page.goto(live_server.url + "/settings/api/")
    page.get_by_label("Key name", exact=True).fill("Backend")
    page.get_by_role("button", name="Create key", exact=True).click()
    key = page.get_by_label("Your new API key", exact=True).input_value()
    sent = {
        "ann@pro.test": "pro",
        "tom@trial.test": "free",  # group 2 of path 2: a trial address, subscribed
        "bob@free.test": "free",
    }
    for email, group in sent.items():
        response = page.request.post(
            live_server.url + "/api/v1/events/send",
            data={"email": email, "eventName": "planChosen", "userGroup": group},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.ok, response.text()
    deadline = time.monotonic() + EMAIL_WAIT_SECONDS
    while len(inbox.messages) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sorted((message["To"], message["Subject"]) for message in inbox.messages) == [
        ("ann@pro.test", "Welcome to Pro"),
        ("bob@free.test", "Welcome"),
        ("tom@trial.test", "Welcome, team"),
    ]

    page.goto(live_server.url + "/loops/")
    page.get_by_role("link", name="Plan welcome", exact=True).click()
    for number in (1, 2, 3):
        expect(page.locator(".path-head").nth(number - 1)).to_contain_text("1 took it")
    shots(page, "loop-after")
