"""The Audience filtered with the filter builder, and its filters saved as segments: listed, applied, exported
(page and command), deleted after a confirmation (by any member); another team's segment is 404."""

import html
import io

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from conftest import builder_post
from contacts.models import Contact, ContactProperty, MailingList, Segment
from contacts.querying import conditions_q

pytestmark = pytest.mark.django_db


@pytest.fixture
def audience(team, other_team):
    ContactProperty.objects.create(team=team, key="seats", label="Seats", type="number")
    vip = MailingList.objects.create(team=team, name="VIP")
    ada = Contact.objects.create(team=team, email="ada@example.com", source="api", properties={"seats": 12})
    Contact.objects.create(team=team, email="alan@example.com", source="api", properties={"seats": 2})
    Contact.objects.create(team=team, email="grace@example.com", source="web", properties={"seats": 40})
    ada.mailing_lists.add(vip, through_defaults={"team": team})
    Contact.objects.create(team=other_team, email="theirs@example.com", source="api", properties={"seats": 99})
    return vip


MANY_SEATS = {"match": "all", "rules": [{"field": "contact.properties.seats", "op": "gt", "value": "10"}]}


def emails(response) -> list[str]:
    page = response.content.decode()
    return sorted(e for e in ("ada@example.com", "alan@example.com", "grace@example.com", "theirs@example.com")
                  if f">{e}<" in page)  # fmt: skip


def test_the_builder_filters_the_audience_and_says_why_a_row_is_refused(logged_in, audience):
    response = logged_in.get(reverse("contacts:list"), builder_post("c", MANY_SEATS))
    assert emails(response) == ["ada@example.com", "grace@example.com"]
    assert "2 of 3 contacts match." in html.unescape(response.content.decode())
    bad = {"c-match": "all", "c-0-field": "contact.properties.seats", "c-0-op": "gt", "c-0-value": "lots"}
    refused = html.unescape(logged_in.get(reverse("contacts:list"), bad).content.decode())
    assert "Seats: “lots” is not a number." in refused and "ada@example.com" not in refused
    event = {"c-match": "all", "c-0-field": "event.amount", "c-0-op": "gt", "c-0-value": "1"}
    assert "Unknown field “event.amount”" in html.unescape(
        logged_in.get(reverse("contacts:list"), event).content.decode()
    )
    one_more = logged_in.get(reverse("contacts:list"), {**builder_post("c", MANY_SEATS), "builder": "add_rule:c"})
    assert 'name="c-1-field"' in one_more.content.decode()


def test_filters_saved_as_a_segment_apply_export_and_delete(logged_in, team, audience):
    params = {"source": "api", **builder_post("c", MANY_SEATS)}
    saved = logged_in.post(reverse("contacts:segment-new"), {**params, "segment_name": "Big API teams"})
    segment = Segment.objects.get(team=team)
    assert saved.url == f"{reverse('contacts:list')}?segment={segment.pk}"
    assert segment.conditions == {
        "match": "all",
        "rules": [
            {"field": "contact.source", "op": "equals", "value": "api"},
            {"field": "contact.properties.seats", "op": "gt", "value": "10"},
        ],
    }
    page = logged_in.get(saved.url)
    assert emails(page) == ["ada@example.com"]
    assert "Segment <strong>Big API teams</strong>: Source is “api” and Seats &gt; “10”" in page.content.decode()
    exported = b"".join(logged_in.get(reverse("contacts:export"), {"segment": segment.pk}).streaming_content)
    assert exported.decode().count("@example.com") == 1
    out = io.StringIO()
    call_command("contacts_export", "--team", team.name, "--segment", "big api TEAMS", stdout=out)
    assert out.getvalue().count("@example.com") == 1 and "ada@example.com" in out.getvalue()
    taken = logged_in.post(reverse("contacts:segment-new"), {**params, "segment_name": "BIG API TEAMS"}, follow=True)
    assert "Another segment is named “BIG API TEAMS”." in html.unescape(taken.content.decode())
    nothing = logged_in.post(reverse("contacts:segment-new"), {"segment_name": "Everyone"}, follow=True)
    assert "Filter the Audience first" in html.unescape(nothing.content.decode())
    deleted = logged_in.post(reverse("contacts:segment-delete", args=[segment.pk]), follow=True)
    assert "Segment “Big API teams” deleted." in html.unescape(deleted.content.decode())
    assert not Segment.objects.exists() and Contact.objects.filter(team=team).count() == 3


def test_deleting_a_segment_asks_first_saying_what_it_filters_and_that_contacts_stay(logged_in, team, audience):
    segment = Segment.objects.create(team=team, name="Big", conditions=MANY_SEATS)
    url = reverse("contacts:segment-delete", args=[segment.pk])
    audience_page = logged_in.get(reverse("contacts:list"), {"segment": segment.pk}).content.decode()
    assert f'<a href="{url}" class="button danger small">' in audience_page  # a link to the question, not a post
    assert f'action="{url}"' not in audience_page
    response = logged_in.get(url)
    page = html.unescape(response.content.decode())
    assert response.status_code == 200 and "Delete the segment “Big”?" in page
    assert "It filters the Audience by: Seats > “10”." in page
    assert "no contact is deleted or changed" in page and 'method="post"' in page
    assert Segment.objects.filter(pk=segment.pk).exists()  # asking deleted nothing
    response = logged_in.post(url)
    assert response.status_code == 302 and response["Location"] == reverse("contacts:list")
    assert not Segment.objects.filter(pk=segment.pk).exists()
    assert Contact.objects.filter(team=team).count() == 3


def test_any_member_may_delete_a_segment(as_member, team, audience):
    segment = Segment.objects.create(team=team, name="Big", conditions=MANY_SEATS)
    url = reverse("contacts:segment-delete", args=[segment.pk])
    assert as_member.get(url).status_code == 200
    assert as_member.post(url).status_code == 302 and not Segment.objects.exists()


def test_a_list_and_the_search_are_saved_too(logged_in, team, audience):
    logged_in.post(reverse("contacts:segment-new"), {"list": audience.pk, "q": "ada", "segment_name": "VIP Ada"})
    segment = Segment.objects.get(team=team)
    assert emails(logged_in.get(reverse("contacts:list"), {"segment": segment.pk})) == ["ada@example.com"]


def test_another_teams_segment_is_404_and_matches_nobody(logged_in, team, audience, outsider, other_team):
    theirs = Segment.objects.create(team=other_team, name="Theirs", conditions=MANY_SEATS)
    assert emails(logged_in.get(reverse("contacts:list"), {"segment": theirs.pk})) == []
    assert logged_in.get(reverse("contacts:segment-delete", args=[theirs.pk])).status_code == 404
    assert logged_in.post(reverse("contacts:segment-delete", args=[theirs.pk])).status_code == 404
    client = Client()
    client.force_login(outsider)
    ours = Segment.objects.create(team=team, name="Ours", conditions=MANY_SEATS)
    assert client.get(reverse("contacts:segment-delete", args=[ours.pk])).status_code == 404
    assert client.post(reverse("contacts:segment-delete", args=[ours.pk])).status_code == 404
    assert Segment.objects.count() == 2


def test_property_columns_are_chosen_and_remembered(logged_in, audience):
    page = logged_in.get(reverse("contacts:list"), {"cols": "1", "col": ["seats", "nosuch"]}).content.decode()
    assert "<th>Seats</th>" in page and "<td>12</td>" in page and "nosuch" not in page.split("<tbody")[1]
    later = logged_in.get(reverse("contacts:list")).content.decode()
    assert "<th>Seats</th>" in later and "<td>40</td>" in later
    cleared = logged_in.get(reverse("contacts:list"), {"cols": "1"}).content.decode()
    assert "<th>Seats</th>" not in cleared


def test_the_search_finds_a_full_name(logged_in, team):
    Contact.objects.create(team=team, email="al@example.com", first_name="Ada", last_name="Lovelace")
    Contact.objects.create(team=team, email="ag@example.com", first_name="Ada", last_name="Gray")
    found = logged_in.get(reverse("contacts:list"), {"q": "ada love"}).content.decode()
    assert ">al@example.com<" in found and ">ag@example.com<" not in found


def test_a_field_just_picked_gets_its_conditions_without_an_error(logged_in, audience):
    picked = {"c-match": "all", "c-0-field": "contact.properties.seats", "c-0-op": "equals", "builder": "refresh:"}
    page = html.unescape(logged_in.get(reverse("contacts:list"), picked).content.decode())
    assert "does not apply" not in page and "enter a value" not in page
    assert '<option value="eq" selected>' in page  # the number's first condition, not the text one it had


def test_a_short_search_is_saved_as_the_audience_ran_it_from_the_start_of_a_name(logged_in, team, audience):
    Contact.objects.create(team=team, email="sally@example.com", first_name="Sally")
    shown = emails(logged_in.get(reverse("contacts:list"), {"q": "al"}))
    logged_in.post(reverse("contacts:segment-new"), {"q": "al", "segment_name": "Al"})
    segment = Segment.objects.get(team=team)
    assert emails(logged_in.get(reverse("contacts:list"), {"segment": segment.pk})) == shown == ["alan@example.com"]
    assert not Contact.objects.filter(team=team).filter(conditions_q(segment.conditions), first_name="Sally")
