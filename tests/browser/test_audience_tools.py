"""The Audience's tools in a real browser: a CSV imported with its columns mapped (its progress followed, its refused
row downloaded), the Audience filtered with the filter builder, the filter saved as a segment, exported as CSV,
a bulk action on it confirmed by its count, and the segment deleted after its confirmation. Screenshots go to
test-artifacts/browser/audience/.
"""

import csv
import io

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import htmx_settled, sign_up

pytestmark = [pytest.mark.django_db(transaction=True)]

SHOTS_FOLDER = "audience"
ROWS = 30


def people() -> bytes:
    lines = ["Email,First name,Plan Name,Seats"]
    lines += [f"person{n}@example.com,Person {n},{'Pro' if n % 2 else 'Basic'},{n}" for n in range(ROWS)]
    lines.append("not-an-email,Nobody,Pro,3")
    return ("\n".join(lines) + "\n").encode()


def test_import_filter_save_a_segment_export_and_act_in_bulk(page: Page, live_server, pipeline, shots):
    sign_up(
        page,
        live_server,
        username="katherine",
        email="katherine@johnson.test",
        password="Trajectory-1962",
        team="Langley",
    )
    page.goto(live_server.url + "/audience/")
    page.get_by_role("link", name="Import CSV", exact=True).click()
    page.get_by_label("CSV file", exact=True).set_input_files(
        {"name": "people.csv", "mimeType": "text/csv", "buffer": people()}
    )
    page.get_by_role("button", name="Upload", exact=True).click()

    # The mapping: headers matched by name, another column a new property typed by its values.
    expect(page.get_by_role("heading", name="Import “people.csv”")).to_be_visible()
    expect(page.get_by_text(f"{ROWS + 1} rows.", exact=False)).to_be_visible()
    expect(page.get_by_label("Import “Email” as", exact=True)).to_have_value("email")
    expect(page.get_by_label("Import “First name” as", exact=True)).to_have_value("first_name")
    expect(page.get_by_label("Import “Seats” as", exact=True)).to_have_value("property:seats")
    page.get_by_label("Import “Plan Name” as", exact=True).select_option("")  # skipped
    shots(page, "mapping")
    page.get_by_role("button", name="Start the import", exact=True).click()
    expect(page.get_by_text("Done", exact=True)).to_be_visible(timeout=30_000)  # polled while it runs
    expect(page.get_by_label("Import progress", exact=True)).to_have_attribute("value", "100")
    shots(page, "imported")
    with page.expect_download() as refused:
        page.get_by_role("link", name="Download the refused rows (CSV, with the reasons)", exact=True).click()
    rows = list(csv.reader(io.StringIO(refused.value.path().read_text())))
    assert rows[1][:3] == [str(ROWS + 2), "“not-an-email” is not an email address.", "not-an-email"]

    # Filter on the new property with the builder.
    page.get_by_role("link", name="See the Audience", exact=True).click()
    expect(page.get_by_role("status").filter(has_text=f"{ROWS} contacts.")).to_be_visible()
    page.get_by_text("Filter by any field or property", exact=True).click()
    htmx_settled(page)
    page.get_by_label("Rule 1: field", exact=True).select_option("contact.properties.seats")
    expect(page.get_by_label("Rule 1: condition", exact=True).locator("option")).to_have_count(7)
    page.get_by_label("Rule 1: condition", exact=True).select_option("gt")
    page.get_by_label("Rule 1: value", exact=True).fill("19")
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(page.get_by_role("status").filter(has_text=f"10 of {ROWS} contacts match.")).to_be_visible()
    page.get_by_label("Segment name", exact=True).fill("Big teams")
    page.get_by_role("button", name="Save as a segment", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="Segment “Big teams” saved.")).to_be_visible()
    expect(page.get_by_text("Seats > “19”", exact=False)).to_be_visible()
    shots(page, "segment")

    with page.expect_download() as exported:
        page.get_by_role("link", name="Export CSV", exact=True).click()
    lines = list(csv.reader(io.StringIO(exported.value.path().read_text())))
    assert lines[0][:2] == ["Email", "First Name"] and len(lines) == 11
    assert {row[0] for row in lines[1:]} == {f"person{n}@example.com" for n in range(20, ROWS)}

    # A bulk action on the segment: the confirmation states the count.
    page.get_by_label("Bulk action, on the ticked rows (none ticked: every match)").select_option("unsubscribe")
    page.get_by_role("button", name="Review…", exact=True).click()
    expect(page.get_by_role("heading", name="Unsubscribe 10 contacts?")).to_be_visible()
    shots(page, "bulk-confirm")
    page.get_by_role("button", name="Unsubscribe 10", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="10 contacts unsubscribed")).to_be_visible()
    page.get_by_label("Subscribed", exact=True).select_option("no")
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(page.get_by_role("status").filter(has_text=f"10 of {ROWS} contacts match.")).to_be_visible()
    shots(page, "after-bulk")

    # Deleting the segment asks first, saying what it filters; its contacts stay.
    page.get_by_role("link", name="Delete segment “Big teams”…", exact=True).click()
    expect(page.get_by_role("heading", name="Delete the segment “Big teams”?")).to_be_visible()
    expect(page.get_by_text("It filters the Audience by: seats > “19”.", exact=True)).to_be_visible()
    shots(page, "segment-delete")
    page.get_by_role("button", name="Delete segment", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="Segment “Big teams” deleted.")).to_be_visible()
    expect(page.get_by_role("navigation", name="Segments")).to_have_count(0)
    expect(page.get_by_role("status").filter(has_text=f"{ROWS} contacts.")).to_be_visible()
