import html
import re
from urllib.parse import urlencode, urljoin

import pytest
from django.urls import reverse

from contacts.models import Contact
from contacts.services import contact_sync
from loops.models import Event
from loops.services import event_fire
from tests.paging import EVENTS_FILTER, events_fill

pytestmark = pytest.mark.django_db


@pytest.fixture
def fired(team, make_loop):
    make_loop(team)
    ada = contact_sync(team=team, email="ada@example.com").contact
    grace = contact_sync(team=team, email="grace@example.com").contact
    event_fire(team=team, contact=grace, name="successfulPayment", properties={"amount_formatted": "$5.00"})
    return event_fire(team=team, contact=ada, name="failedPayment", properties={"amount_formatted": "$9.00"}).event


def test_events_page_lists_and_filters_by_name_and_contact(client, user, fired):
    client.force_login(user)
    body = client.get(reverse("loops:events")).content.decode()
    assert "failedPayment" in body and "successfulPayment" in body
    by_name = client.get(reverse("loops:events"), {"name": "failedPayment"}).content.decode()
    assert "ada@example.com" in by_name and "grace@example.com" not in by_name
    by_contact = client.get(reverse("loops:events"), {"contact": "grace@"}).content.decode()
    assert "grace@example.com" in by_contact and "ada@example.com" not in by_contact


def test_event_page_shows_properties_and_the_runs_it_started(client, user, fired):
    client.force_login(user)
    body = client.get(reverse("loops:event", args=[fired.pk])).content.decode()
    assert "$9.00" in body and "Stripe - Payment Failed" in body and "ada@example.com" in body


def test_another_teams_user_sees_no_events_and_gets_404_on_one(client, outsider, fired):
    client.force_login(outsider)
    assert "failedPayment" not in client.get(reverse("loops:events")).content.decode()
    assert client.get(reverse("loops:event", args=[fired.pk])).status_code == 404


def test_events_need_login(client, fired):
    assert client.get(reverse("loops:events")).status_code == 302


# Pagination: the pager's links as rendered, followed as a browser would follow them.
EVENT_ROW = re.compile(r'<tr><td><a href="/events/(\d+)/">([^<]+)</a></td>\s*<td><a href="/audience/\d+/">([^<]+)</a>')


def _pager_link(body: str, label: str) -> str | None:
    found = re.search(rf'<nav class="pager".*?<a href="([^"]*)"[^>]*>{label}</a>', body, re.S)
    return html.unescape(found[1]) if found else None


def test_older_links_walk_filtered_events_to_the_last_page_once_each(logged_in, team):
    expected = events_fill(team=team)
    url = "http://testserver" + reverse("loops:events") + "?" + urlencode(EVENTS_FILTER)
    pages = []
    while True:
        body = logged_in.get(url).content.decode()
        # The filter shows on every page, and every row matches it.
        assert '<option value="failedPayment" selected>' in body and 'value="example.com"' in body
        rows = EVENT_ROW.findall(body)
        assert {(name, email.endswith("@example.com")) for _, name, email in rows} == {("failedPayment", True)}
        pages.append([int(pk) for pk, _, _ in rows])
        older = _pager_link(body, "Older")
        if older is None:
            break
        assert older.startswith("?") and not older.startswith("??")
        assert "name=failedPayment" in older and "contact=example.com" in older
        url = urljoin(url, older)
    assert [len(rows) for rows in pages] == [50, 50, 30]
    assert pages[1] == expected[50:100] and pages[2] == expected[100:]
    assert sum(pages, []) == expected
    assert "No older ones." in body
    # "Newer" on the last page goes back to page 2, filters and all, and "Newer" again to the newest.
    newer = _pager_link(body, "Newer")
    assert newer.startswith("?") and not newer.startswith("??") and "name=failedPayment" in newer
    back = logged_in.get(urljoin(url, newer)).content.decode()
    assert [int(pk) for pk, _, _ in EVENT_ROW.findall(back)] == pages[1]
    newest = logged_in.get(urljoin(url, _pager_link(back, "Newer"))).content.decode()
    assert [int(pk) for pk, _, _ in EVENT_ROW.findall(newest)] == pages[0]
    assert _pager_link(newest, "Newer") is None and _pager_link(newest, "Newest") is None


def test_events_arriving_between_two_clicks_never_repeat_a_row_on_the_next_page(logged_in, team):
    expected = events_fill(team=team)
    first = logged_in.get(reverse("loops:events"), EVENTS_FILTER).content.decode()
    contact = Contact.objects.get(team=team, email="ada@example.com")
    for _ in range(5):  # newer than all of them: an offset would shift every row down by five
        Event.objects.create(team=team, contact=contact, name="failedPayment")
    second = logged_in.get(urljoin("http://testserver/events/", _pager_link(first, "Older"))).content.decode()
    assert [int(pk) for pk, _, _ in EVENT_ROW.findall(second)] == expected[50:100]


@pytest.mark.parametrize("params", [{"older": "abc"}, {"newer": "!!"}, {"older": "MjAyNi0xMS0wMnwx"}, {"page": "7"}])
def test_a_cursor_no_link_could_have_made_shows_the_newest_page(logged_in, team, params):
    expected = events_fill(team=team)
    response = logged_in.get(reverse("loops:events"), {**EVENTS_FILTER, **params})
    assert response.status_code == 200
    assert [int(pk) for pk, _, _ in EVENT_ROW.findall(response.content.decode())] == expected[:50]


@pytest.mark.parametrize("params", [{"name": "failedPayment\x00"}, {"contact": "ada@\x00"}])
def test_a_nul_in_a_filter_is_not_an_error(logged_in, fired, params):
    response = logged_in.get(reverse("loops:events"), params)
    assert response.status_code == 200 and "ada@example.com" in response.content.decode()
