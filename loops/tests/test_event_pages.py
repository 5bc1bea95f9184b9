import pytest
from django.urls import reverse

from contacts.services import contact_sync
from loops.services import event_fire

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
