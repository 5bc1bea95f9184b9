"""Audience → Mailing lists: the lists page, add, edit, delete; a contact's lists; the Audience filtered by list."""

import html
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from contacts.list_forms import MailingListForm
from contacts.models import Contact, ListMembership, MailingList, Segment
from contacts.services import contact_sync
from contacts.services import lists as list_services

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(team):
    return contact_sync(team=team, email="ada@example.com", full_name="Ada Lovelace").contact


@pytest.fixture
def news(team):
    return list_services.mailing_list_create(team=team, name="Newsletter", description="Monthly news", is_public=True)


@pytest.fixture
def beta(team):
    return list_services.mailing_list_create(team=team, name="Beta testers")


@pytest.fixture
def foreign(other_team):
    return list_services.mailing_list_create(team=other_team, name="Globex insiders")


def _member_ids(contact):
    return set(ListMembership.objects.filter(contact=contact).values_list("mailing_list_id", flat=True))


# --- the lists page ---------------------------------------------------------------------------------------


def test_every_page_requires_login(client, news):
    for url in [
        reverse("contacts:lists"),
        reverse("contacts:list-new"),
        reverse("contacts:list-edit", args=[news.pk]),
        reverse("contacts:list-delete", args=[news.pk]),
    ]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_audience_page_links_to_the_lists_page(logged_in):
    body = logged_in.get(reverse("contacts:list")).content.decode()
    assert f'href="{reverse("contacts:lists")}"' in body and "Mailing lists" in body


def test_lists_page_shows_the_teams_lists_with_id_visibility_and_members(logged_in, team, ada, news, beta, foreign):
    other = Contact.objects.create(team=team, email="grace@example.com")
    list_services.contact_lists_set(contact=ada, mailing_lists=[news, beta])
    list_services.contact_lists_set(contact=other, mailing_lists=[news])
    response = logged_in.get(reverse("contacts:lists"))
    body = response.content.decode()
    assert {m.name: m.members for m in response.context["lists"]} == {"Beta testers": 1, "Newsletter": 2}
    for text in ["Newsletter", "Monthly news", "Public", "Beta testers", "Private", f">{news.pk}</code>"]:
        assert text in body, text
    assert f"?list={news.pk}" in body
    assert "Globex insiders" not in body


def test_lists_page_when_there_is_none(logged_in):
    body = logged_in.get(reverse("contacts:lists")).content.decode()
    assert "No mailing list yet" in body


def test_add_a_list(logged_in, team):
    response = logged_in.post(
        reverse("contacts:list-new"), {"name": " Product updates ", "description": "What's new", "is_public": "on"}
    )
    created = MailingList.objects.get(team=team)
    assert response.status_code == 302 and response["Location"] == reverse("contacts:lists")
    assert (created.name, created.description, created.is_public) == ("Product updates", "What's new", True)
    body = logged_in.get(response["Location"]).content.decode()
    assert f"Product updates was created. Its id for the API is {created.pk}." in body


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"name": ""}, "This field is required"),
        ({"name": "   "}, "This field is required"),
        ({"name": "x" * 121}, "at most 120 characters"),
        ({"name": "Newsletter"}, "already has a list with this name"),
        ({"name": "NEWSLETTER"}, "already has a list with this name"),
    ],
)
def test_add_list_errors_keep_the_form_and_save_nothing(logged_in, team, news, data, error):
    response = logged_in.post(reverse("contacts:list-new"), {**data, "description": "kept text"})
    body = response.content.decode()
    assert response.status_code == 200 and error in body
    assert "kept text" in body and "<form" in body
    assert list(MailingList.objects.filter(team=team)) == [news]


def test_the_same_name_in_another_team_is_fine(logged_in, team, foreign):
    response = logged_in.post(reverse("contacts:list-new"), {"name": foreign.name})
    assert response.status_code == 302
    assert MailingList.objects.filter(name=foreign.name).count() == 2


def test_a_duplicate_that_slips_past_the_form_is_a_form_error_not_a_500(logged_in, team, news, monkeypatch):
    # Two people adding the same name at once: both forms pass, the database refuses the second insert.
    monkeypatch.setattr(MailingListForm, "clean_name", lambda form: form.cleaned_data["name"])
    response = logged_in.post(reverse("contacts:list-new"), {"name": "Newsletter"})
    assert response.status_code == 200 and "already has a list with this name" in response.content.decode()
    assert MailingList.objects.filter(team=team).count() == 1


def test_services_report_a_taken_name_as_a_validation_error(team, news, beta):
    with pytest.raises(ValidationError) as exc:
        list_services.mailing_list_create(team=team, name="Newsletter")
    assert "name" in exc.value.message_dict
    with pytest.raises(ValidationError):
        list_services.mailing_list_update(mailing_list=beta, name="Newsletter")
    assert MailingList.objects.get(pk=beta.pk).name == "Beta testers"


def test_edit_a_list(logged_in, news):
    page = logged_in.get(reverse("contacts:list-edit", args=[news.pk])).content.decode()
    assert "Edit Newsletter" in page and f">{news.pk}</code>" in page and 'value="Newsletter"' in page
    response = logged_in.post(reverse("contacts:list-edit", args=[news.pk]), {"name": "The Newsletter"})
    assert response.status_code == 302 and response["Location"] == reverse("contacts:lists")
    news.refresh_from_db()
    assert (news.name, news.description, news.is_public) == ("The Newsletter", "", False)


def test_edit_keeping_its_own_name_is_fine(logged_in, news):
    response = logged_in.post(reverse("contacts:list-edit", args=[news.pk]), {"name": "newsletter"})
    assert response.status_code == 302
    news.refresh_from_db()
    assert news.name == "newsletter"


@pytest.mark.parametrize(("name", "error"), [("Beta testers", "already has a list"), ("", "This field is required")])
def test_edit_errors_keep_the_form_and_save_nothing(logged_in, news, beta, name, error):
    response = logged_in.post(
        reverse("contacts:list-edit", args=[news.pk]), {"name": name, "description": "changed", "is_public": ""}
    )
    body = response.content.decode()
    assert response.status_code == 200 and error in body and "changed" in body
    assert "Edit Newsletter" in body
    news.refresh_from_db()
    assert (news.name, news.description, news.is_public) == ("Newsletter", "Monthly news", True)


def test_delete_asks_then_deletes_the_list_and_its_memberships_not_the_contacts(logged_in, ada, news, beta):
    list_services.contact_lists_set(contact=ada, mailing_lists=[news, beta])
    page = logged_in.get(reverse("contacts:list-delete", args=[news.pk])).content.decode()
    assert "Delete the list Newsletter?" in page and "Its 1 contact leaves the list" in page
    assert MailingList.objects.filter(pk=news.pk).exists()
    response = logged_in.post(reverse("contacts:list-delete", args=[news.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("contacts:lists")
    assert not MailingList.objects.filter(pk=news.pk).exists()
    assert Contact.objects.filter(pk=ada.pk).exists()
    assert _member_ids(ada) == {beta.pk}


def _text(response) -> str:
    """The page's text as a reader sees it: entities decoded, white space collapsed."""
    return " ".join(html.unescape(response.content.decode()).split())


def _on(list_id, op="in_list"):
    return {"field": "lists", "op": op, "value": str(list_id)}


def test_delete_names_the_segments_that_filter_on_the_list_and_what_becomes_of_them(logged_in, team, news, beta):
    on = Segment.objects.create(team=team, name="Readers", conditions={"match": "all", "rules": [_on(news.pk)]})
    nested = {"match": "all", "rules": [{"match": "any", "rules": [_on(beta.pk), _on(news.pk, "not_in_list")]}]}
    off = Segment.objects.create(team=team, name="Non-readers", conditions=nested)
    Segment.objects.create(team=team, name="Testers", conditions={"match": "all", "rules": [_on(beta.pk)]})
    page = _text(logged_in.get(reverse("contacts:list-delete", args=[news.pk])))
    assert "2 segments filter on it." in page and "Testers" not in page
    audience = reverse("contacts:list")
    for segment in (on, off):
        assert f'<a href="{audience}?segment={segment.pk}">Segment “{segment.name}”</a>' in page
    assert "They are kept, and their rule on this list then names a deleted list: “on” it matches no contact," in page
    assert "“not on” it matches every contact." in page
    assert "No segment or loop uses it." not in page
    other = _text(logged_in.get(reverse("contacts:list-delete", args=[beta.pk])))
    assert "2 segments filter on it." in other and "Readers" not in other
    Segment.objects.exclude(name="Readers").delete()
    alone = _text(logged_in.get(reverse("contacts:list-delete", args=[beta.pk])))
    assert "No segment or loop uses it." in alone and "filters on it" not in alone and "filter on it" not in alone


def test_a_segment_on_a_deleted_list_is_kept_and_matches_as_the_warning_said(logged_in, team, ada, news):
    grace = Contact.objects.create(team=team, email="grace@example.com")
    list_services.contact_lists_set(contact=ada, mailing_lists=[news])
    on = Segment.objects.create(team=team, name="Readers", conditions={"match": "all", "rules": [_on(news.pk)]})
    off = Segment.objects.create(
        team=team, name="Others", conditions={"match": "all", "rules": [_on(news.pk, "not_in_list")]}
    )
    logged_in.post(reverse("contacts:list-delete", args=[news.pk]))
    assert Segment.objects.filter(team=team).count() == 2
    for segment, shown in ((on, set()), (off, {ada.email, grace.email})):
        response = logged_in.get(reverse("contacts:list"), {"segment": segment.pk})
        page = _text(response)
        assert response.status_code == 200
        assert {email for email in (ada.email, grace.email) if f">{email}<" in page} == shown
        assert f"a deleted list (#{news.pk})" in page
        assert "A mailing list it names was deleted: no contact is on a deleted list." in page
    # More filters on it cannot be saved with the deleted list's rule: refused with a message, not an error page
    refused = logged_in.post(
        reverse("contacts:segment-new"), {"segment": off.pk, "source": "api", "segment_name": "More"}, follow=True
    )
    assert refused.status_code == 200
    assert "The segment was not saved: Choose one of your team's mailing lists." in _text(refused)
    # A segment on lists that exist says nothing of a deletion
    beta = list_services.mailing_list_create(team=team, name="Beta")
    kept = Segment.objects.create(team=team, name="Beta", conditions={"match": "all", "rules": [_on(beta.pk)]})
    fine = _text(logged_in.get(reverse("contacts:list"), {"segment": kept.pk}))
    assert "on the list “Beta”" in fine and "was deleted" not in fine


@pytest.mark.parametrize("name", ["contacts:list-edit", "contacts:list-delete"])
def test_another_teams_user_gets_404(client, outsider, ada, news, name):
    list_services.contact_lists_set(contact=ada, mailing_lists=[news])
    client.force_login(outsider)
    assert client.get(reverse(name, args=[news.pk])).status_code == 404
    assert client.post(reverse(name, args=[news.pk]), {"name": "Taken over"}).status_code == 404
    news.refresh_from_db()
    assert news.name == "Newsletter" and _member_ids(ada) == {news.pk}


def test_another_teams_lists_are_not_on_their_lists_page(client, outsider, news):
    client.force_login(outsider)
    assert "Newsletter" not in client.get(reverse("contacts:lists")).content.decode()


def test_csrf_is_enforced(user, team, ada, news):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    posts = [
        (reverse("contacts:list-new"), {"name": "Sneaky"}),
        (reverse("contacts:list-edit", args=[news.pk]), {"name": "Sneaky"}),
        (reverse("contacts:list-delete", args=[news.pk]), {}),
        (reverse("contacts:edit", args=[ada.pk]), {"email": "ada@example.com", "mailing_lists": [news.pk]}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    assert list(MailingList.objects.filter(team=team).values_list("name", flat=True)) == ["Newsletter"]
    assert _member_ids(ada) == set()


# --- a contact's lists ------------------------------------------------------------------------------------


def test_contact_page_shows_its_lists(logged_in, ada, news, beta):
    assert "Mailing lists" in logged_in.get(reverse("contacts:detail", args=[ada.pk])).content.decode()
    list_services.contact_lists_set(contact=ada, mailing_lists=[news])
    body = logged_in.get(reverse("contacts:detail", args=[ada.pk])).content.decode()
    assert f'?list={news.pk}">Newsletter</a>' in body and "Beta testers" not in body


def test_contact_form_offers_the_teams_lists_only_with_its_own_ticked(logged_in, ada, news, beta, foreign):
    list_services.contact_lists_set(contact=ada, mailing_lists=[beta])
    response = logged_in.get(reverse("contacts:edit", args=[ada.pk]))
    body = response.content.decode()
    assert "Newsletter" in body and "Beta testers" in body and "Globex insiders" not in body
    assert list(response.context["form"].initial["mailing_lists"]) == [beta.pk]
    assert body.count("checked") == 2  # Beta testers and "Subscribed"


def test_contact_form_without_lists_says_how_to_add_one(logged_in, ada):
    body = logged_in.get(reverse("contacts:edit", args=[ada.pk])).content.decode()
    assert "Your team has no mailing list yet" in body and reverse("contacts:list-new") in body


def test_edit_contact_ticks_and_unticks_lists(logged_in, ada, news, beta):
    url = reverse("contacts:edit", args=[ada.pk])
    data = {"email": "ada@example.com", "subscribed": "on"}
    assert logged_in.post(url, {**data, "mailing_lists": [news.pk, beta.pk]}).status_code == 302
    assert _member_ids(ada) == {news.pk, beta.pk}
    assert ListMembership.objects.filter(contact=ada).values_list("team_id", flat=True).distinct().get() == ada.team_id
    assert logged_in.post(url, {**data, "mailing_lists": [beta.pk]}).status_code == 302
    assert _member_ids(ada) == {beta.pk}
    assert logged_in.post(url, data).status_code == 302
    assert _member_ids(ada) == set()


def test_add_contact_with_lists(logged_in, team, news):
    response = logged_in.post(reverse("contacts:new"), {"email": "new@example.com", "mailing_lists": [news.pk]})
    assert response.status_code == 302
    assert _member_ids(Contact.objects.get(team=team, email="new@example.com")) == {news.pk}


@pytest.mark.parametrize("forged", ["foreign", "999999", "not-a-number"])
def test_edit_contact_cannot_attach_another_teams_list(logged_in, ada, news, foreign, forged):
    forged_id = foreign.pk if forged == "foreign" else forged
    response = logged_in.post(
        reverse("contacts:edit", args=[ada.pk]),
        {"email": "ada@example.com", "first_name": "Changed", "mailing_lists": [news.pk, forged_id]},
    )
    body = response.content.decode()
    assert response.status_code == 200 and 'value="Changed"' in body
    assert "field checklist has-error" in body and response.context["form"].errors["mailing_lists"]
    assert _member_ids(ada) == set()
    assert not ListMembership.objects.filter(mailing_list=foreign).exists()
    ada.refresh_from_db()
    assert ada.first_name == "Ada"


def test_a_contact_form_error_saves_no_list(logged_in, ada, news):
    response = logged_in.post(
        reverse("contacts:edit", args=[ada.pk]),
        {"email": "ada@example.com", "properties": "{nope", "mailing_lists": [news.pk]},
    )
    assert response.status_code == 200 and "Not valid JSON" in response.content.decode()
    assert response.context["form"]["mailing_lists"].value() == [str(news.pk)]  # still ticked
    assert _member_ids(ada) == set()


def test_contact_lists_set_ignores_lists_of_another_team(ada, news, foreign):
    assert list_services.contact_lists_set(contact=ada, mailing_lists=[news, foreign.pk, 999999]) == {news.pk}
    assert _member_ids(ada) == {news.pk}
    list_services.contact_lists_set(contact=ada, mailing_lists=[news])  # again: nothing changes, nothing fails
    assert _member_ids(ada) == {news.pk}


def test_another_teams_user_cannot_edit_the_contacts_lists(client, outsider, ada, news, foreign):
    client.force_login(outsider)
    url = reverse("contacts:edit", args=[ada.pk])
    assert client.post(url, {"email": "ada@example.com", "mailing_lists": [foreign.pk]}).status_code == 404
    assert _member_ids(ada) == set()


# --- the Audience filtered by list ------------------------------------------------------------------------


def test_audience_filtered_by_list(logged_in, team, other_team, ada, news, beta, foreign):
    grace = Contact.objects.create(team=team, email="grace@example.com", subscribed=False)
    outsider_contact = Contact.objects.create(team=other_team, email="secret@globex.test")
    list_services.contact_lists_set(contact=ada, mailing_lists=[news])
    list_services.contact_lists_set(contact=grace, mailing_lists=[news, beta])
    list_services.contact_lists_set(contact=outsider_contact, mailing_lists=[foreign])
    page = lambda **q: logged_in.get(reverse("contacts:list"), q).content.decode()  # noqa: E731
    assert "ada@" in page(list=news.pk) and "grace@" in page(list=news.pk)
    assert "grace@" in page(list=beta.pk) and "ada@" not in page(list=beta.pk)
    assert "grace@" in page(list=news.pk, subscribed="no") and "ada@" not in page(list=news.pk, subscribed="no")
    assert f'<option value="{beta.pk}" selected>Beta testers</option>' in page(list=beta.pk)
    assert "Globex insiders" not in page()
    # Another team's list, or no list at all: no contact, and no error.
    for forged in [foreign.pk, "999999", "abc"]:
        body = page(list=forged)
        assert "secret@globex" not in body and "ada@" not in body and "not one of your team" in body


def test_keyset_pages_walk_a_lists_members_once_in_order(logged_in, team, news):
    now = timezone.now()
    contacts = Contact.objects.bulk_create(Contact(team=team, email=f"c{i:03}@example.com") for i in range(130))
    for i, contact in enumerate(contacts):  # same second for some, to test the id tie-break
        Contact.objects.filter(pk=contact.pk).update(created_at=now - timedelta(seconds=i // 3))
    members = [c for i, c in enumerate(contacts) if i % 2 == 0]  # 65: two pages
    for contact in members:
        list_services.contact_lists_set(contact=contact, mailing_lists=[news])
    newest = sorted(members, key=lambda c: (contacts.index(c) // 3, -c.pk))
    for sort, expected in [("newest", newest), ("oldest", newest[::-1])]:
        seen, params = [], {"list": news.pk, "sort": sort}
        while True:
            page = logged_in.get(reverse("contacts:list"), params).context["page"]
            seen += [c.email for c in page.contacts]
            if not page.next_cursor:
                break
            params = {**params, "after": page.next_cursor}
        assert seen == [c.email for c in expected]
    assert [c.email for c in newest[:3]] == ["c002@example.com", "c000@example.com", "c004@example.com"]


def test_show_more_keeps_the_list_filter(logged_in, team, news):
    contacts = Contact.objects.bulk_create(Contact(team=team, email=f"c{i}@example.com") for i in range(60))
    Contact.objects.create(team=team, email="not-on-the-list@example.com")
    for contact in contacts:
        list_services.contact_lists_set(contact=contact, mailing_lists=[news])
    first = logged_in.get(reverse("contacts:list"), {"list": news.pk})
    assert f"list={news.pk}" in first.content.decode().split("Show more")[0].rsplit("hx-get", 1)[1]
    more = logged_in.get(
        reverse("contacts:list"), {"list": news.pk, "after": first.context["page"].next_cursor}, HTTP_HX_REQUEST="true"
    )
    body = more.content.decode()
    assert "<html" not in body and body.count("<tr>") == 10 and "not-on-the-list" not in body
