"""`null` in an optional field is the same as leaving it out, as Loops treats it and as Loops' clients send it
(the PyPI `loops-sdk` sends `"mailingLists": null` and `"eventProperties": null` by default). On a contact's
text fields and custom properties `null` clears the value, as Loops documents."""

import json

import pytest

from contacts.models import Contact, ContactProperty, ListMembership, MailingList
from loops.models import EmailMessage, Event, TransactionalEmail

pytestmark = pytest.mark.django_db


def body(response) -> dict:
    return json.loads(response.content)


def ok(response) -> dict:
    assert response.status_code == 200, response.content
    return body(response)


@pytest.fixture
def newsletter(team):
    return MailingList.objects.create(team=team, name="Newsletter")


@pytest.fixture
def grace(team, newsletter):
    """An unsubscribed contact on the newsletter, with a user id and a custom property."""
    contact = Contact.objects.create(
        team=team, email="grace@example.com", first_name="Grace", last_name="Hopper", user_id="u-grace",
        user_group="admirals", subscribed=False, properties={"plan": "pro", "seats": 3},
    )  # fmt: skip
    ListMembership.objects.create(team=team, contact=contact, mailing_list=newsletter)
    return contact


# --- contacts ------------------------------------------------------------------------------------


def test_create_with_null_mailing_lists_and_user_id_creates_the_contact(api, team):
    response = api.post(
        "/api/v1/contacts/create",
        {"email": "ada@example.com", "firstName": "Ada", "mailingLists": None, "userId": None, "subscribed": None},
        format="json",
    )
    contact = Contact.objects.get(team=team)
    assert ok(response) == {"success": True, "id": str(contact.pk)}
    assert (contact.email, contact.first_name, contact.user_id, contact.subscribed) == (
        "ada@example.com",
        "Ada",
        "",
        True,
    )
    assert not ListMembership.objects.exists()


def test_update_with_nulls_leaves_lists_subscription_email_and_user_id_as_they_are(api, grace, newsletter):
    ok(
        api.put(
            "/api/v1/contacts/update", {"email": grace.email, "mailingLists": None, "subscribed": None}, format="json"
        )
    )
    ok(api.put("/api/v1/contacts/update", {"userId": "u-grace", "email": None, "lastName": "Murray"}, format="json"))
    ok(api.put("/api/v1/contacts/update", {"email": grace.email, "userId": None}, format="json"))
    grace.refresh_from_db()
    assert (grace.email, grace.user_id, grace.subscribed, grace.last_name) == (
        "grace@example.com", "u-grace", False, "Murray",
    )  # fmt: skip
    assert ListMembership.objects.filter(contact=grace, mailing_list=newsletter).exists()


def test_null_still_clears_text_fields_and_custom_properties(api, grace):
    payload = {"email": grace.email, "firstName": None, "userGroup": None, "seats": None, "unknownKey": None}
    ok(api.put("/api/v1/contacts/update", payload, format="json"))
    grace.refresh_from_db()
    assert (grace.first_name, grace.user_group, grace.properties) == ("", "", {"plan": "pro"})
    assert not ContactProperty.objects.filter(key="unknownKey").exists()
    [found] = body(api.get("/api/v1/contacts/find", {"email": grace.email}))
    assert found["firstName"] is None and "seats" not in found


def test_delete_with_a_null_user_id_deletes_by_email(api, grace):
    assert ok(api.post("/api/v1/contacts/delete", {"email": grace.email, "userId": None}, format="json"))["success"]
    assert not Contact.objects.exists()


def test_delete_with_only_nulls_is_a_400(api, grace):
    response = api.post("/api/v1/contacts/delete", {"email": None, "userId": None}, format="json")
    assert response.status_code == 400 and "email or a userId" in body(response)["message"]
    assert Contact.objects.exists()


# --- events --------------------------------------------------------------------------------------


def test_an_event_with_null_event_properties_and_mailing_lists_is_sent(api, grace, newsletter):
    payload = {"eventName": "signedUp", "email": grace.email, "eventProperties": None, "mailingLists": None}
    assert ok(api.post("/api/v1/events/send", payload, format="json")) == {"success": True}
    event = Event.objects.get()
    assert (event.name, event.properties, event.contact_id) == ("signedUp", {}, grace.pk)
    assert ListMembership.objects.filter(contact=grace, mailing_list=newsletter).exists()


def test_an_event_by_user_id_with_a_null_email_is_sent(api, grace):
    payload = {"eventName": "signedUp", "userId": "u-grace", "email": None, "subscribed": None}
    ok(api.post("/api/v1/events/send", payload, format="json"))
    grace.refresh_from_db()
    assert Event.objects.get().contact_id == grace.pk and grace.subscribed is False


def test_a_null_event_property_is_left_out(api, grace):
    payload = {"eventName": "paid", "email": grace.email, "eventProperties": {"amount": "$9.00", "coupon": None}}
    ok(api.post("/api/v1/events/send", payload, format="json"))
    assert Event.objects.get().properties == {"amount": "$9.00"}


# --- transactional -------------------------------------------------------------------------------


@pytest.fixture
def notice(team):
    return TransactionalEmail.objects.create(team=team, public_id="notice-1", name="Notice", subject="Hi", body="Hello")


def test_a_transactional_send_with_null_optional_fields_is_queued(api, notice):
    payload = {
        "transactionalId": "notice-1", "email": "sam@example.com",
        "dataVariables": None, "addToAudience": None, "attachments": None,
    }  # fmt: skip
    assert ok(api.post("/api/v1/transactional", payload, format="json")) == {"success": True}
    message = EmailMessage.objects.get()
    assert (message.to_email, message.subject, message.contact) == ("sam@example.com", "Hi", None)
    assert not Contact.objects.exists()  # addToAudience null is false


# --- required fields stay required ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/api/v1/contacts/create", {"email": None}, "email"),
        ("/api/v1/events/send", {"email": "a@example.com", "eventName": None}, "eventName"),
        ("/api/v1/transactional", {"transactionalId": None, "email": "a@example.com"}, "transactionalId"),
        ("/api/v1/transactional", {"transactionalId": "notice-1", "email": None}, "email"),
        ("/api/v1/contacts/properties", {"name": None, "type": "string"}, "name"),
    ],
)
def test_null_in_a_required_field_is_a_400_naming_it(api, notice, path, payload, field):
    response = api.post(path, payload, format="json")
    assert response.status_code == 400 and body(response)["message"].startswith(f"{field}:"), response.content
    assert not Contact.objects.exists() and not Event.objects.exists() and not EmailMessage.objects.exists()
