"""Who may resubscribe whom. A contact who unsubscribed with the link in an email cannot be resubscribed from
the Audience page (Loops has the same rule): only by themselves, from that link's page, or through the API's
suppression removal with its quota. A contact a team member unsubscribed can be resubscribed by one."""

import re

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from api.services import api_key_create
from contacts.models import Contact
from loops.services.unsubscribing import unsubscribe_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def grace(team):
    return Contact.objects.create(team=team, email="grace@example.com", first_name="Grace")


def unsubscribe_by_link(client, contact):
    url = reverse("loops:unsubscribe", args=[unsubscribe_token(contact)])
    # What a mail client's one-click unsubscribe sends (List-Unsubscribe-Post).
    response = client.post(url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    contact.refresh_from_db()
    return url


def test_the_link_records_that_the_contact_unsubscribed_itself(client, grace):
    unsubscribe_by_link(client, grace)
    assert (grace.subscribed, grace.unsubscribed_by) == (False, "link")
    assert grace.unsubscribed_at is not None


def test_a_contact_who_used_the_link_cannot_be_resubscribed_from_the_audience_page(client, logged_in, grace):
    unsubscribe_by_link(client, grace)
    page = logged_in.get(reverse("contacts:detail", args=[grace.pk])).content.decode()
    assert "Resubscribe" not in page and "only they can resubscribe" in page
    assert "unsubscribed by the contact, with the unsubscribe link" in page
    response = logged_in.post(reverse("contacts:subscription", args=[grace.pk]), {"subscribed": "yes"}, follow=True)
    assert "only they can resubscribe" in response.content.decode()
    grace.refresh_from_db()
    assert (grace.subscribed, grace.unsubscribed_by) == (False, "link")


def test_the_edit_form_cannot_resubscribe_them_either(client, logged_in, grace):
    unsubscribe_by_link(client, grace)
    form = logged_in.get(reverse("contacts:edit", args=[grace.pk])).content.decode()
    assert re.search(r'<input type="checkbox" name="subscribed"[^>]*disabled', form)
    assert "only they can resubscribe" in form
    response = logged_in.post(
        reverse("contacts:edit", args=[grace.pk]),
        {"email": "grace@example.com", "first_name": "Changed", "subscribed": "on"},
    )
    assert response.status_code == 302  # the other fields save; the ticked box is not the contact's choice
    grace.refresh_from_db()
    assert (grace.subscribed, grace.unsubscribed_by, grace.first_name) == (False, "link", "Changed")


def test_a_subscription_post_that_says_neither_yes_nor_no_changes_nothing(logged_in, grace):
    response = logged_in.post(reverse("contacts:subscription", args=[grace.pk]), {"action": "x"}, follow=True)
    assert "Nothing changed" in response.content.decode()
    grace.refresh_from_db()
    assert grace.subscribed is True


def test_the_edit_form_still_saves_other_fields_of_an_unsubscribed_contact(client, logged_in, grace):
    unsubscribe_by_link(client, grace)
    response = logged_in.post(
        reverse("contacts:edit", args=[grace.pk]), {"email": "grace@example.com", "first_name": "Grace M."}
    )
    assert response.status_code == 302
    grace.refresh_from_db()
    assert (grace.subscribed, grace.first_name, grace.unsubscribed_by) == (False, "Grace M.", "link")


def test_a_contact_a_team_member_unsubscribed_can_be_resubscribed_by_one(logged_in, grace):
    logged_in.post(reverse("contacts:subscription", args=[grace.pk]), {"subscribed": "no"})
    grace.refresh_from_db()
    assert (grace.subscribed, grace.unsubscribed_by) == (False, "team")
    assert "Resubscribe" in logged_in.get(reverse("contacts:detail", args=[grace.pk])).content.decode()
    logged_in.post(reverse("contacts:subscription", args=[grace.pk]), {"subscribed": "yes"})
    grace.refresh_from_db()
    assert (grace.subscribed, grace.unsubscribed_by, grace.unsubscribed_at) == (True, "", None)


def test_the_edit_form_records_a_team_members_unsubscribe(logged_in, grace):
    logged_in.post(reverse("contacts:edit", args=[grace.pk]), {"email": "grace@example.com", "first_name": "Grace"})
    grace.refresh_from_db()
    assert (grace.subscribed, grace.unsubscribed_by) == (False, "team")


def test_the_contact_can_resubscribe_itself_from_the_links_page(client, grace):
    url = unsubscribe_by_link(client, grace)
    page = client.get(url).content.decode()
    assert "Already unsubscribed" in page and 'value="resubscribe"' in page
    response = client.post(url, {"action": "resubscribe"})
    assert "subscribed again" in response.content.decode()
    grace.refresh_from_db()
    assert (grace.subscribed, grace.unsubscribed_by) == (True, "")


def test_a_second_unsubscribe_keeps_who_did_it_first(client, logged_in, grace):
    unsubscribe_by_link(client, grace)
    logged_in.post(reverse("contacts:subscription", args=[grace.pk]), {"subscribed": "no"})
    grace.refresh_from_db()
    assert grace.unsubscribed_by == "link"


def test_the_apis_suppression_removal_can_resubscribe_them(client, team, grace):
    unsubscribe_by_link(client, grace)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(team=team, name='k').key}")
    assert api.delete("/api/v1/contacts/suppression?email=grace@example.com").status_code == 200
    grace.refresh_from_db()
    assert (grace.subscribed, grace.unsubscribed_by) == (True, "")


def test_the_api_records_its_own_unsubscribe(team, grace):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(team=team, name='k').key}")
    response = api.put("/api/v1/contacts/update", {"email": "grace@example.com", "subscribed": False}, format="json")
    assert response.status_code == 200
    grace.refresh_from_db()
    assert (grace.subscribed, grace.unsubscribed_by) == (False, "api")


def test_a_contact_unsubscribed_before_who_did_it_was_recorded_is_not_resubscribed_by_a_member(logged_in, grace):
    Contact.objects.filter(pk=grace.pk).update(subscribed=False)  # as the upgrade finds it: unsubscribed_by ""
    logged_in.post(reverse("contacts:subscription", args=[grace.pk]), {"subscribed": "yes"})
    grace.refresh_from_db()
    assert grace.subscribed is False


def test_a_subscribed_contact_never_carries_who_unsubscribed_it(grace):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Contact.objects.filter(pk=grace.pk).update(unsubscribed_by="team")
