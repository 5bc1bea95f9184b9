"""At phone width, lists drop their extra columns but keep the ones a user needs: the Audience shows
whether a contact is subscribed, the API keys keep Revoke and the mailing lists Edit and Delete, and no
page is wider than the screen. Screenshots go to test-artifacts/browser/phone/.
"""

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from accounts.models import Membership
from accounts.services import membership_add, team_create
from api.services import api_key_create
from contacts.models import Contact, MailingList
from contacts.services.importing import import_create
from tests.browser.conftest import PHONE

pytestmark = [pytest.mark.django_db(transaction=True)]

SHOTS_FOLDER = "phone"
PASSWORD = "Difference-Engine-1822"


@pytest.fixture
def owner(pipeline):
    """An owner with a contact, a mailing list and an API key, made before the browser starts."""
    user = get_user_model().objects.create_user("ada", "ada@acme.test", PASSWORD)
    team = team_create(name="Acme")
    membership_add(team=team, user=user, role=Membership.Role.OWNER)
    Contact.objects.create(team=team, email="grace@example.com", first_name="Grace", last_name="Hopper")
    MailingList.objects.create(team=team, name="Newsletter", description="Product news, monthly.")
    api_key_create(team=team, name="Production", created_by=user)
    csv = b"Email,First Name,Last Name,Favourite Engine,Plan Started\nada@example.com,Ada,Lovelace,Analytical,2026-01\n"
    user.import_pk = import_create(team=team, user=user, filename="engines.csv", raw=csv).pk
    return user


def fits_the_screen(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width}px wide on a {PHONE['width']}px screen"


def test_lists_keep_their_needed_columns_on_a_phone(owner, page: Page, live_server, shots):
    page.set_viewport_size(PHONE)
    page.goto(live_server.url + "/login/")
    page.get_by_label("Username", exact=True).fill("ada")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in", exact=True).click()

    page.goto(live_server.url + "/audience/")
    expect(page.get_by_role("link", name="grace@example.com", exact=True)).to_be_visible()
    expect(page.get_by_role("columnheader", name="Subscribed", exact=True)).to_be_visible()
    expect(page.get_by_role("columnheader", name="First name", exact=True)).to_be_hidden()
    fits_the_screen(page)
    shots(page, "audience")

    page.goto(live_server.url + "/audience/lists/")
    expect(page.get_by_role("link", name="Edit Newsletter", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Delete Newsletter", exact=True)).to_be_visible()
    fits_the_screen(page)
    shots(page, "mailing-lists")

    page.goto(f"{live_server.url}/audience/import/{owner.import_pk}/")  # the mapping of an upload
    picker = page.get_by_label("Import “Plan Started” as", exact=True)
    expect(picker).to_be_visible()
    box = picker.bounding_box()
    assert box is not None and box["x"] + box["width"] <= PHONE["width"]  # in view: no sideways scrolling to reach it
    fits_the_screen(page)
    shots(page, "import-mapping")

    page.goto(live_server.url + "/settings/api/")
    revoke = page.get_by_role("link", name="Revoke Production", exact=True)
    expect(revoke).to_be_visible()
    fits_the_screen(page)
    shots(page, "api-keys")
    revoke.click()
    expect(page.get_by_role("button", name="Revoke", exact=False).first).to_be_visible()
