"""Bulk actions on the Audience: a confirmation that states the count, then add to a list, unsubscribe or delete
what the filter (or the ticked rows) picks; deleting is for admins; the limit is named; another team's contacts
are never touched."""

import html

import pytest
from django.urls import reverse

from contacts.models import Contact, ListMembership, MailingList
from contacts.services import bulk as bulk_module

pytestmark = pytest.mark.django_db


@pytest.fixture
def audience(team, other_team):
    for n in range(5):
        Contact.objects.create(team=team, email=f"c{n}@example.com", source="api" if n < 3 else "web")
    Contact.objects.create(team=team, email="gone@example.com", source="api", subscribed=False, unsubscribed_by="link")
    theirs = Contact.objects.create(team=other_team, email="theirs@example.com", source="api")
    return MailingList.objects.create(team=team, name="Newsletter"), theirs


def test_the_confirmation_states_the_count_and_saves_nothing(logged_in, audience):
    newsletter, _ = audience
    page = logged_in.get(reverse("contacts:bulk"), {"action": "add_to_list", "to_list": newsletter.pk, "source": "api"})
    text = html.unescape(page.content.decode())
    assert "Add 4 contacts to “Newsletter”?" in text and '<input type="hidden" name="source" value="api">' in text
    assert not ListMembership.objects.exists()


def test_add_to_a_list_then_unsubscribe_what_the_filter_picks(logged_in, team, audience):
    newsletter, theirs = audience
    added = logged_in.post(
        reverse("contacts:bulk"), {"action": "add_to_list", "to_list": newsletter.pk, "source": "api"}, follow=True
    )
    assert "4 contacts added to “Newsletter” (0 were on it already)." in html.unescape(added.content.decode())
    assert ListMembership.objects.filter(mailing_list=newsletter).count() == 4
    again = logged_in.post(reverse("contacts:bulk"), {"action": "add_to_list", "to_list": newsletter.pk}, follow=True)
    assert "2 contacts added to “Newsletter” (4 were on it already)." in html.unescape(again.content.decode())
    unsubscribed = logged_in.post(reverse("contacts:bulk"), {"action": "unsubscribe", "source": "api"}, follow=True)
    assert "3 contacts unsubscribed (1 was already)." in html.unescape(unsubscribed.content.decode())
    gone = Contact.objects.get(email="gone@example.com")
    assert gone.unsubscribed_by == "link"  # who did it first stays
    assert set(Contact.objects.filter(team=team, subscribed=False).values_list("unsubscribed_by", flat=True)) == {
        "team", "link"
    }  # fmt: skip
    theirs.refresh_from_db()
    assert theirs.subscribed and not ListMembership.objects.filter(contact=theirs).exists()


def test_ticked_rows_only_and_never_another_teams(logged_in, team, audience):
    _, theirs = audience
    ticked = list(Contact.objects.filter(team=team, source="web").values_list("pk", flat=True))
    logged_in.post(reverse("contacts:bulk"), {"action": "unsubscribe", "ids": [*ticked, theirs.pk]})
    assert set(Contact.objects.filter(subscribed=False, unsubscribed_by="team").values_list("pk", flat=True)) == set(
        ticked
    )
    theirs.refresh_from_db()
    assert theirs.subscribed


def test_deleting_is_for_admins(as_member, team, audience):
    assert as_member.get(reverse("contacts:bulk"), {"action": "delete"}).status_code == 403
    assert as_member.post(reverse("contacts:bulk"), {"action": "delete"}).status_code == 403
    assert Contact.objects.filter(team=team).count() == 6


def test_an_admin_deletes_what_the_filter_picks(as_admin, team, audience):
    page = as_admin.get(reverse("contacts:bulk"), {"action": "delete", "source": "web"}).content.decode()
    assert "Delete 2 contacts?" in page and "cannot be undone" in page
    as_admin.post(reverse("contacts:bulk"), {"action": "delete", "source": "web"})
    assert Contact.objects.filter(team=team).count() == 4 and Contact.objects.filter(email="theirs@example.com")


def test_past_the_limit_it_says_so_and_does_nothing(logged_in, team, audience, monkeypatch):
    monkeypatch.setattr(bulk_module, "BULK_MAX", 3)
    refused = logged_in.post(reverse("contacts:bulk"), {"action": "unsubscribe"}, follow=True)
    assert "A bulk action takes at most 3 contacts at a time: narrow the filter" in html.unescape(
        refused.content.decode()
    )
    assert Contact.objects.filter(team=team, subscribed=False).count() == 1
    no_list = logged_in.post(reverse("contacts:bulk"), {"action": "add_to_list"}, follow=True)
    assert "Choose the mailing list to add them to." in html.unescape(no_list.content.decode())


def test_an_id_that_is_no_id_is_refused_not_a_500(logged_in, team, audience):
    assert logged_in.get(reverse("contacts:bulk"), {"action": "add_to_list", "to_list": "²"}).status_code == 302
    assert logged_in.post(reverse("contacts:bulk"), {"action": "add_to_list", "to_list": "²"}).status_code == 302
    ticked = Contact.objects.get(team=team, email="c4@example.com")
    data = {"action": "unsubscribe", "ids": [str(ticked.pk), "99999999999999999999999"]}  # past any INTEGER
    assert logged_in.post(reverse("contacts:bulk"), data).status_code == 302
    assert set(Contact.objects.filter(subscribed=False).values_list("email", flat=True)) == {
        "gone@example.com", "c4@example.com"
    }  # fmt: skip
