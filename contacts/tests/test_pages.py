"""The Audience pages: list, search, filters, keyset pages, a contact's page, add, edit, delete."""

import base64
import html
import re
from datetime import timedelta
from urllib.parse import urlencode, urljoin

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from contacts.models import Contact
from contacts.services import contact_sync
from loops.models import EmailMessage
from tests.paging import AUDIENCE_FILTER, audience_fill

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(team):
    contact = contact_sync(team=team, email="ada@example.com", full_name="Ada Lovelace").contact
    Contact.objects.filter(pk=contact.pk).update(properties={"plan": "pro"})
    contact.refresh_from_db()
    return contact


def test_every_page_requires_login(client, ada):
    for url in [reverse("contacts:list"), reverse("contacts:new"), reverse("contacts:detail", args=[ada.pk])]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_list_shows_the_teams_contacts_only(logged_in, team, other_team, ada):
    contact_sync(team=other_team, email="secret@globex.test")
    body = logged_in.get(reverse("contacts:list")).content.decode()
    assert "ada@example.com" in body and "Lovelace" in body
    assert "secret@globex.test" not in body


def test_search_by_email_or_name_and_filters(logged_in, team, ada):
    contact_sync(team=team, email="grace@example.com", full_name="Grace Hopper")
    Contact.objects.filter(email="grace@example.com").update(subscribed=False, source="Import")
    page = lambda **q: logged_in.get(reverse("contacts:list"), q).content.decode()  # noqa: E731
    assert "grace@" in page(q="hopper") and "ada@" not in page(q="hopper")
    assert "ada@" in page(q="ADA@EX") and "grace@" not in page(q="ada@ex")
    assert "grace@" in page(subscribed="no") and "ada@" not in page(subscribed="no")
    assert "ada@" in page(source="Stripe webhook") and "grace@" not in page(source="Stripe webhook")


def test_keyset_pages_walk_every_contact_once_in_order(logged_in, team):
    now = timezone.now()
    contacts = Contact.objects.bulk_create(Contact(team=team, email=f"c{i:03}@example.com") for i in range(120))
    for i, contact in enumerate(contacts):  # same second for some, to test the id tie-break
        Contact.objects.filter(pk=contact.pk).update(created_at=now - timedelta(seconds=i // 3))
    seen, url = [], reverse("contacts:list")
    params = {}
    while True:
        response = logged_in.get(url, params)
        page = response.context["page"]
        seen += [c.email for c in page.contacts]
        if not page.next_cursor:
            break
        params = {"after": page.next_cursor}
    assert len(seen) == 120 and len(set(seen)) == 120
    assert seen[:3] == ["c002@example.com", "c001@example.com", "c000@example.com"]


def test_show_more_with_htmx_returns_only_rows(logged_in, team):
    Contact.objects.bulk_create(Contact(team=team, email=f"c{i}@example.com") for i in range(60))
    first = logged_in.get(reverse("contacts:list")).context["page"]
    more = logged_in.get(reverse("contacts:list"), {"after": first.next_cursor}, HTTP_HX_REQUEST="true")
    body = more.content.decode()
    assert "<html" not in body and body.count("<tr>") == 10


def test_a_mangled_cursor_starts_from_the_first_page(logged_in, ada):
    assert logged_in.get(reverse("contacts:list"), {"after": "%%%not-a-cursor"}).status_code == 200


def test_contact_page_shows_fields_properties_events_runs_and_emails(logged_in, team, ada, make_loop):
    make_loop(team)
    from loops.services import event_fire

    event_fire(team=team, contact=ada, name="failedPayment", properties={"amount_formatted": "$9.00"})
    from loops.models import LoopRun

    run = LoopRun.objects.get()
    EmailMessage.objects.create(
        team=team,
        contact=ada,
        run=run,
        to_email=ada.email,
        from_email="a@b.c",
        subject="Your payment didn't go through",
        html_body="x",
        text_body="x",
        status="sent",
    )
    body = logged_in.get(reverse("contacts:detail", args=[ada.pk])).content.decode()
    for text in [
        "Ada Lovelace",
        "plan",
        "pro",
        "failedPayment",
        "$9.00",
        "Stripe - Payment Failed",
        "Your payment didn&#x27;t go through",
        "Sent",
    ]:
        assert text in body, text


def test_add_contact(logged_in, team):
    response = logged_in.post(
        reverse("contacts:new"),
        {"email": " new@example.com ", "first_name": "New", "subscribed": "on", "properties": '{"plan": "free"}'},
    )
    contact = Contact.objects.get(team=team)
    assert response.status_code == 302 and response["Location"] == reverse("contacts:detail", args=[contact.pk])
    assert (contact.email, contact.first_name, contact.properties, contact.source) == (
        "new@example.com",
        "New",
        {"plan": "free"},
        "Added in the app",
    )


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"email": "ADA@example.com"}, "already in your audience"),
        ({"email": "not-an-email"}, "valid email"),
        ({"email": "x@example.com", "properties": "{nope"}, "Not valid JSON"),
        ({"email": "x@example.com", "properties": "[1]"}, "Properties are an object"),
    ],
)
def test_add_contact_errors_keep_the_form_and_save_nothing(logged_in, team, ada, data, error):
    response = logged_in.post(reverse("contacts:new"), data)
    assert response.status_code == 200 and error in response.content.decode()
    assert 'value="' + data["email"] in response.content.decode()
    assert Contact.objects.filter(team=team).count() == 1


def test_edit_contact(logged_in, ada):
    response = logged_in.post(
        reverse("contacts:edit", args=[ada.pk]),
        {
            "email": "ada@example.com",
            "first_name": "Augusta",
            "last_name": "King",
            "user_group": "vip",
            "properties": '{"plan": "team"}',
        },
    )
    assert response.status_code == 302
    ada.refresh_from_db()
    assert (ada.first_name, ada.last_name, ada.user_group, ada.properties, ada.subscribed) == (
        "Augusta",
        "King",
        "vip",
        {"plan": "team"},
        False,
    )


def test_unsubscribe_and_resubscribe(logged_in, ada):
    logged_in.post(reverse("contacts:subscription", args=[ada.pk]), {"subscribed": "no"})
    ada.refresh_from_db()
    assert not ada.subscribed
    logged_in.post(reverse("contacts:subscription", args=[ada.pk]), {"subscribed": "yes"})
    ada.refresh_from_db()
    assert ada.subscribed


def test_delete_asks_then_deletes(logged_in, ada):
    assert "Delete ada@example.com?" in logged_in.get(reverse("contacts:delete", args=[ada.pk])).content.decode()
    assert Contact.objects.filter(pk=ada.pk).exists()
    assert logged_in.post(reverse("contacts:delete", args=[ada.pk])).status_code == 302
    assert not Contact.objects.filter(pk=ada.pk).exists()


@pytest.mark.parametrize("name", ["contacts:detail", "contacts:edit", "contacts:delete"])
def test_another_teams_user_gets_404(client, outsider, ada, name):
    client.force_login(outsider)
    assert client.get(reverse(name, args=[ada.pk])).status_code == 404
    assert client.post(reverse(name, args=[ada.pk]), {"email": "x@example.com"}).status_code == 404
    assert Contact.objects.filter(pk=ada.pk, email="ada@example.com").exists()


def test_another_teams_user_cannot_unsubscribe(client, outsider, ada):
    client.force_login(outsider)
    assert client.post(reverse("contacts:subscription", args=[ada.pk]), {"subscribed": "no"}).status_code == 404
    ada.refresh_from_db()
    assert ada.subscribed


def test_forms_need_a_csrf_token(user, ada):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(reverse("contacts:delete", args=[ada.pk])).status_code == 403
    assert client.post(reverse("contacts:new"), {"email": "x@example.com"}).status_code == 403
    assert Contact.objects.filter(pk=ada.pk).exists()


# Pagination: the links as rendered, followed as a browser would follow them.
ROW_EMAIL = re.compile(r'<td><a href="/audience/\d+/">([^<]+)</a></td>')
MORE_ROW = re.compile(r'<tr class="more-row" id="more-row">(.*?)</tr>', re.S)


def _show_more(body: str) -> tuple[str, str] | None:
    """The "Show more" link's href and hx-get, unescaped; None on the last page."""
    row = MORE_ROW.search(body)
    if row is None:
        return None
    href, hx_get = (html.unescape(re.search(rf' {name}="([^"]*)"', row[1])[1]) for name in ("href", "hx-get"))
    return href, hx_get


@pytest.mark.parametrize("sort", ["newest", "oldest"])
def test_show_more_links_walk_a_filtered_audience_to_its_end_once_each(logged_in, team, sort):
    expected = audience_fill(team=team, oldest_first=sort == "oldest")
    url = "http://testserver" + reverse("contacts:list") + "?" + urlencode({**AUDIENCE_FILTER, "sort": sort})
    seen, sizes = [], []
    while True:
        response = logged_in.get(url)
        body = response.content.decode()
        assert response.status_code == 200
        assert 'value="keep"' in body and '<option value="Import" selected>' in body  # the filter shows, every page
        assert body.count("<thead>") == 1
        rows = ROW_EMAIL.findall(body)
        seen += rows
        sizes.append(len(rows))
        more = _show_more(body)
        if more is None:
            break
        href, hx_get = more
        assert href == hx_get and href.startswith("?") and not href.startswith("??")
        assert "q=keep" in href and "source=Import" in href and f"sort={sort}" in href
        url = urljoin(url, href)
    assert sizes == [50, 50, 30]
    assert seen == expected


def test_show_more_with_htmx_swaps_in_only_the_next_rows_with_the_filters(logged_in, team):
    expected = audience_fill(team=team)
    url = "http://testserver" + reverse("contacts:list") + "?" + urlencode(AUDIENCE_FILTER)
    body = logged_in.get(url).content.decode()
    seen = ROW_EMAIL.findall(body)
    while more := _show_more(body):
        # htmx resolves hx-get against the page's own URL, which "Show more" never changes.
        response = logged_in.get(urljoin(url, more[1]), HTTP_HX_REQUEST="true")
        body = response.content.decode()
        assert "HX-Request" in response["Vary"]  # so no cache hands these rows to a plain visit of the URL
        for part in ("<html", "<thead", "<form", "<nav", "<h1"):
            assert part not in body, part  # only rows: no second page inside the table
        assert 'hx-target="#more-row"' in body or _show_more(body) is None
        seen += ROW_EMAIL.findall(body)
    assert seen == expected


def test_a_later_page_opened_as_a_link_leads_back_to_the_first_page_with_the_filters(logged_in, team):
    expected = audience_fill(team=team)
    url = "http://testserver" + reverse("contacts:list") + "?" + urlencode(AUDIENCE_FILTER)
    first = logged_in.get(url).content.decode()
    assert "Back to the first page" not in first
    later = logged_in.get(urljoin(url, _show_more(first)[0])).content.decode()
    back = html.unescape(re.search(r'<a href="([^"]*)">Back to the first page</a>', later)[1])
    assert back.startswith("?") and "after" not in back and "q=keep" in back and "source=Import" in back
    assert ROW_EMAIL.findall(logged_in.get(urljoin(url, back)).content.decode()) == expected[:50]
    mangled = logged_in.get(url + "&after=%25%25not-a-cursor").content.decode()  # shows the first page, as such
    assert "Back to the first page" not in mangled and ROW_EMAIL.findall(mangled) == expected[:50]


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "raw",
    [
        "9999-12-31T23:59:59-05:00|5",  # past year 9999 in UTC
        "0001-01-01T00:00:00+05:00|5",  # before year 1 in UTC
        "2999-01-01T00:00:00+23:59|5",  # an offset PostgreSQL refuses
        "2000-01-01T00:00:00|5",  # no offset: not one a page wrote
        "2999-01-01T00:00:00+00:00|99999999999999999999999",  # past any id column
        "2999-01-01T00:00:00+00:00|x",
    ],
)
def test_a_cursor_no_page_could_have_made_starts_from_the_first_page(logged_in, ada, raw):
    response = logged_in.get(reverse("contacts:list"), {"after": _cursor(raw)})
    assert response.status_code == 200 and "ada@example.com" in response.content.decode()


@pytest.mark.parametrize("params", [{"q": "ada\x00"}, {"source": "Stripe webhook\x00"}, {"q": "\x00", "after": "\x00"}])
def test_a_nul_in_a_filter_is_not_an_error(logged_in, ada, params):
    response = logged_in.get(reverse("contacts:list"), params)
    assert response.status_code == 200 and "ada@example.com" in response.content.decode()


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ('{"note": "a\\u0000b"}', "Null characters are not allowed"),
        ('{"note": "\\ud800"}', "Unpaired surrogates"),
        ('{"plan": {"nested": true}}', "A property value is text, a number"),
        ('{"bad key": 1}', "A custom property name starts with a letter"),
        ('{"a": 1e999}', "out of range"),
    ],
)
def test_properties_the_database_cannot_hold_are_a_form_error_not_a_500(logged_in, team, properties, message):
    response = logged_in.post(reverse("contacts:new"), {"email": "new@example.com", "properties": properties})
    assert response.status_code == 200 and message in html.unescape(response.content.decode())
    assert not Contact.objects.filter(email="new@example.com").exists()


def test_properties_saved_in_the_form_are_declared_with_their_type(logged_in, team):
    from contacts.models import ContactProperty

    response = logged_in.post(
        reverse("contacts:new"), {"email": "new@example.com", "properties": '{"plan": "pro", "seats": 3}'}
    )
    assert response.status_code == 302
    assert dict(ContactProperty.objects.filter(team=team).values_list("key", "type")) == {
        "plan": "string",
        "seats": "number",
    }
