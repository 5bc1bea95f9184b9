"""The event catalogue: each name with its count, last seen and property keys over a date range, and the volume
per day as SVG; another team's events are not counted."""

import html
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from contacts.models import Contact
from loops.models import Event

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(team, other_team):
    ada = Contact.objects.create(team=team, email="ada@example.com")
    theirs = Contact.objects.create(team=other_team, email="theirs@example.com")
    now = timezone.now()
    for days_ago, name, properties in [
        (0, "failedPayment", {"amount": 25, "invoice_id": "in_1"}),
        (1, "failedPayment", {"amount": 30}),
        (3, "signedUp", {"plan": "Pro"}),
        (40, "signedUp", {}),
    ]:
        event = Event.objects.create(team=team, contact=ada, name=name, properties=properties)
        Event.objects.filter(pk=event.pk).update(created_at=now - timedelta(days=days_ago))
    Event.objects.create(team=other_team, contact=theirs, name="failedPayment")


def test_the_catalogue_counts_each_name_in_the_range_with_its_keys_and_a_chart(logged_in, events):
    page = html.unescape(logged_in.get(reverse("loops:event-catalogue")).content.decode())
    table = page[page.index("<table") :]
    assert table.index(">failedPayment<") < table.index(">signedUp<")  # the most frequent first
    assert "<code>amount</code> <code>invoice_id</code>" in table  # the latest's keys
    assert "All events: 3 from" in page and page.count("<rect ") == 30  # one bar a day, the last 30 days
    wide = html.unescape(logged_in.get(reverse("loops:event-catalogue"), {"from": "2000-01-01"}).content.decode())
    assert "A range is at most 366 days" in wide and "All events: 4 from" in wide
    one = logged_in.get(reverse("loops:event-catalogue"), {"name": "signedUp"}).content.decode()
    assert "signedUp: 1 from" in one
    bad = html.unescape(logged_in.get(reverse("loops:event-catalogue"), {"from": "yesterday"}).content.decode())
    assert "A date is YYYY-MM-DD" in bad
