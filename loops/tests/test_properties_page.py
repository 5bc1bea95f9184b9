"""Audience → Properties: listed and searched, created and deleted by admins (a member gets 403, another team's
admin 404), with an "in use" warning naming the loops, transactional emails and segments that use the property."""

import html

import pytest
from django.test import Client
from django.urls import reverse

from conftest import chain_steps
from contacts.models import ContactProperty, Segment
from loops.models import Loop, LoopStep, TransactionalEmail

pytestmark = pytest.mark.django_db


def test_properties_are_listed_searched_and_created(as_admin, team):
    ContactProperty.objects.create(team=team, key="seats", label="Seats", type="number")
    page = as_admin.get(reverse("contacts:properties")).content.decode()
    assert "<code>seats</code>" in page and "<code>planName</code>" in page  # declared and built in
    found = as_admin.get(reverse("contacts:properties"), {"q": "SEAT"}).content.decode()
    assert "<code>seats</code>" in found and "<code>planName</code>" not in found
    created = as_admin.post(reverse("contacts:property-new"), {"name": "companySize", "type": "number"}, follow=True)
    assert "Property companySize (number) created." in html.unescape(created.content.decode())
    taken = as_admin.post(reverse("contacts:property-new"), {"name": "seats", "type": "string"})
    assert taken.status_code == 400 and "exists already" in taken.content.decode()
    bad = as_admin.post(reverse("contacts:property-new"), {"name": "1st", "type": "string"})
    assert bad.status_code == 400 and ContactProperty.objects.filter(team=team).count() == 2


def test_deleting_warns_where_it_is_used(as_admin, team):
    prop = ContactProperty.objects.create(team=team, key="seats", label="Seats", type="number")
    loop = Loop.objects.create(team=team, name="Big teams", trigger_event_name="go")
    rule = {"match": "all", "rules": [{"field": "contact.properties.seats", "op": "gt", "value": "10"}]}
    chain_steps(loop, LoopStep(kind="filter", conditions=rule), LoopStep(kind="email", subject="Hi", body="x"))
    TransactionalEmail.objects.create(team=team, name="Receipt", subject="For {{ contact.seats }} seats", body="x",
                                      public_id="tx1")  # fmt: skip
    Segment.objects.create(team=team, name="Large", conditions=rule)
    page = html.unescape(as_admin.get(reverse("contacts:property-delete", args=[prop.pk])).content.decode())
    assert "It is in use." in page
    assert "Loop “Big teams”: audience filter" in page or "Loop “Big teams”: filter" in page
    assert "Transactional email “Receipt”" in page and "Segment “Large”" in page
    as_admin.post(reverse("contacts:property-delete", args=[prop.pk]))
    assert not ContactProperty.objects.filter(pk=prop.pk).exists()


def test_a_member_cannot_create_or_delete(as_member, team, other_team):
    prop = ContactProperty.objects.create(team=team, key="seats", label="Seats", type="number")
    assert as_member.post(reverse("contacts:property-new"), {"name": "x", "type": "string"}).status_code == 403
    assert as_member.post(reverse("contacts:property-delete", args=[prop.pk])).status_code == 403
    theirs = ContactProperty.objects.create(team=other_team, key="theirs", label="T", type="string")
    assert as_member.get(reverse("contacts:properties")).status_code == 200
    assert ContactProperty.objects.filter(pk=prop.pk).exists() and ContactProperty.objects.filter(pk=theirs.pk)


def test_another_teams_admin_gets_404(team, outsider):
    prop = ContactProperty.objects.create(team=team, key="seats", label="Seats", type="number")
    client = Client()
    client.force_login(outsider)
    assert client.get(reverse("contacts:property-delete", args=[prop.pk])).status_code == 404
    assert client.post(reverse("contacts:property-delete", args=[prop.pk])).status_code == 404
    assert ContactProperty.objects.filter(pk=prop.pk).exists()
