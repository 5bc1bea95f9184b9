"""The Django admin saves contacts through the contacts services, with the app's checks as form errors."""

import re

import pytest

from contacts.models import Contact, ContactProperty
from loops.models import Loop, LoopRun, LoopStep
from loops.services import loop_activate

pytestmark = pytest.mark.django_db
ADD = "/admin/contacts/contact/add/"


def _add(client, team, **fields):
    page = client.get(ADD).content.decode()
    inlines = dict(re.findall(r'name="([\w-]+-(?:TOTAL|INITIAL|MIN_NUM|MAX_NUM)_FORMS)" value="(\d+)"', page))
    data = {"team": team.pk, "email": "carol@example.com", "subscribed": "on", "properties": "{}", **fields}
    return client.post(ADD, {**inlines, **data})


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ('{"nested": {"a": 1}}', "A property value is text, a number, true/false or null."),
        ('["x"]', "Properties are an object"),
        ('{"seats": "3"}', "seats: This property is a number."),
    ],
)
def test_properties_the_app_refuses_are_a_form_error_and_nothing_is_saved(superuser_client, team, properties, message):
    ContactProperty.objects.create(team=team, key="seats", label="Seats", type="number")
    response = _add(superuser_client, team, properties=properties)
    assert response.status_code == 200 and message in response.content.decode()
    assert not Contact.objects.exists()


def test_an_email_taken_in_another_case_is_a_form_error(superuser_client, team):
    Contact.objects.create(team=team, email="carol@example.com")
    response = _add(superuser_client, team, email="CAROL@example.com")
    assert response.status_code == 200 and "already in your audience" in response.content.decode()
    assert Contact.objects.count() == 1


def test_a_contact_added_in_the_admin_keeps_its_source_and_starts_contact_added_loops(superuser_client, team):
    loop = Loop.objects.create(team=team, name="Welcome", trigger="contact_added")
    LoopStep.objects.create(team=team, loop=loop, kind="email", subject="Welcome", body="Hello")
    loop_activate(loop=loop)
    response = _add(superuser_client, team, source="Imported by admin", properties='{"plan": "pro"}')
    assert response.status_code == 302
    contact = Contact.objects.get()
    assert (contact.source, contact.properties) == ("Imported by admin", {"plan": "pro"})
    assert LoopRun.objects.filter(loop=loop, contact=contact).exists()
