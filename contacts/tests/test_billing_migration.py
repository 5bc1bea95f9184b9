"""A team's own property named like a Stripe billing property keeps its data when they become built in."""

import importlib

import pytest
from django.apps import apps

from contacts.models import Contact, ContactProperty

pytestmark = pytest.mark.django_db

forwards = importlib.import_module("contacts.migrations.0007_billing_property_conflicts").forwards


def test_a_same_typed_declaration_goes_and_another_typed_one_moves_with_its_values(team, other_team):
    ContactProperty.objects.create(team=team, key="planName", label="planName", type="string")
    ContactProperty.objects.create(team=team, key="mrr", label="Monthly", type="string")
    ContactProperty.objects.create(team=team, key="mrrCustom", label="taken", type="number")
    ContactProperty.objects.create(team=other_team, key="mrr", label="mrr", type="number")
    ada = Contact.objects.create(team=team, email="ada@example.com", properties={"planName": "Pro", "mrr": "lots"})
    theirs = Contact.objects.create(team=other_team, email="ada@example.com", properties={"mrr": 5})
    forwards(apps, None)
    declared = dict(ContactProperty.objects.filter(team=team).values_list("key", "type"))
    assert declared == {"mrrCustom": "number", "mrrCustom2": "string"}
    ada.refresh_from_db()
    theirs.refresh_from_db()
    assert ada.properties == {"planName": "Pro", "mrrCustom2": "lots"}
    assert theirs.properties == {"mrr": 5} and not ContactProperty.objects.filter(team=other_team).exists()
