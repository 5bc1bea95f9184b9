"""The v1 API: each endpoint's success, its errors, and that a key only ever reaches its own team."""

import base64
import json

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from contacts.models import Contact, ContactProperty, ListMembership, MailingList
from loops.models import EmailMessage, Event, LoopRun, TransactionalEmail
from loops.services.sending import emails_drain
from webhooks.models import Delivery

pytestmark = pytest.mark.django_db


def body(response) -> dict | list:
    return json.loads(response.content)


def assert_error(response, status: int, text: str = ""):
    assert response.status_code == status, response.content
    data = body(response)
    assert data["success"] is False and isinstance(data["message"], str) and data["message"]
    assert text in data["message"], data["message"]


@pytest.fixture
def ada(team):
    return Contact.objects.create(team=team, email="ada@example.com", first_name="Ada", user_id="u-ada")


@pytest.fixture
def newsletter(team):
    return MailingList.objects.create(team=team, name="Newsletter", description="Monthly", is_public=True)


# --- the key -------------------------------------------------------------------------------------


def test_api_key_names_the_team(api, team):
    response = api.get("/api/v1/api-key")
    assert response.status_code == 200 and body(response) == {"success": True, "teamName": "Acme"}


@pytest.mark.parametrize(
    "header", [None, "Bearer ls_not-a-real-key", "Basic dXNlcjpwYXNz", "Bearer", "Bearer " + "x" * 500]
)
def test_missing_or_wrong_key_is_401(db, header):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.post("/api/v1/contacts/create", {"email": "x@example.com"}, format="json")
    assert_error(response, 401, "Invalid API key")
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Contact.objects.exists()


def test_a_revoked_key_is_401(api, key):
    from api.models import ApiKey
    from api.services import api_key_revoke

    api_key_revoke(api_key=ApiKey.objects.get())
    assert_error(api.get("/api/v1/api-key"), 401)


def test_last_used_is_recorded(api):
    from api.models import ApiKey

    assert ApiKey.objects.get().last_used_at is None
    api.get("/api/v1/api-key")
    assert ApiKey.objects.get().last_used_at is not None


# --- contacts ------------------------------------------------------------------------------------


def test_create_contact_with_custom_properties_and_lists(api, team, newsletter):
    response = api.post(
        "/api/v1/contacts/create",
        {
            "email": "grace@example.com",
            "firstName": "Grace",
            "lastName": "Hopper",
            "userGroup": "admirals",
            "userId": "u-grace",
            "plan": "pro",
            "seats": 3,
            "mailingLists": {str(newsletter.pk): True},
        },
        format="json",
    )
    assert response.status_code == 200
    contact = Contact.objects.get(team=team, email="grace@example.com")
    assert body(response) == {"success": True, "id": str(contact.pk)}
    assert (contact.first_name, contact.last_name, contact.user_group, contact.user_id, contact.source) == (
        "Grace", "Hopper", "admirals", "u-grace", "API",
    )  # fmt: skip
    assert contact.properties == {"plan": "pro", "seats": 3}
    assert ListMembership.objects.filter(contact=contact, mailing_list=newsletter).exists()
    assert set(ContactProperty.objects.filter(team=team).values_list("key", "type")) == {
        ("plan", "string"), ("seats", "number"),
    }  # fmt: skip


@pytest.mark.parametrize("payload", [{"email": "ADA@example.com"}, {"email": "new@example.com", "userId": "u-ada"}])
def test_create_existing_email_or_user_id_is_409(api, ada, payload):
    assert_error(api.post("/api/v1/contacts/create", payload, format="json"), 409, "already on list")
    assert Contact.objects.count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "email"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@example.com", "firstName": "x" * 151}, "firstName"),
        ({"email": "a@example.com", "subscribed": "perhaps"}, "subscribed"),
        ({"email": "a@example.com", "nested": {"a": 1}}, "nested"),
        ({"email": "a@example.com", "bad key": 1}, "bad key"),
        ({"email": "a@example.com", "mailingLists": {"999": True}}, "mailingLists"),
        ({"email": "a@example.com", "note": "a\x00b"}, "note"),
        ({"email": "a@example.com", "big": "__1e999__"}, "big"),  # parses to infinity
    ],
)
def test_create_contact_says_which_field_is_wrong(api, payload, field):
    raw = json.dumps(payload).replace('"__1e999__"', "1e999")
    response = api.post("/api/v1/contacts/create", raw, content_type="application/json")
    assert_error(response, 400, field)
    assert not Contact.objects.exists()


def test_a_property_keeps_its_type(api, ada, team):
    ContactProperty.objects.create(team=team, key="seats", label="Seats", type="number")
    response = api.put("/api/v1/contacts/update", {"email": ada.email, "seats": "three"}, format="json")
    assert_error(response, 400, "seats: This property is a number.")


def test_update_changes_fields_and_creates_when_missing(api, team, ada, newsletter):
    response = api.put(
        "/api/v1/contacts/update",
        {
            "email": "ada@example.com",
            "lastName": "Lovelace",
            "plan": "team",
            "mailingLists": {str(newsletter.pk): True},
        },
        format="json",
    )
    assert body(response) == {"success": True, "id": str(ada.pk)}
    ada.refresh_from_db()
    assert (ada.first_name, ada.last_name, ada.properties) == ("Ada", "Lovelace", {"plan": "team"})
    api.put("/api/v1/contacts/update", {"email": ada.email, "mailingLists": {str(newsletter.pk): False}}, format="json")
    assert not ListMembership.objects.filter(contact=ada).exists()
    created = api.put("/api/v1/contacts/update", {"email": "new@example.com", "firstName": "New"}, format="json")
    assert created.status_code == 200 and Contact.objects.filter(team=team, email="new@example.com").exists()


def test_update_by_user_id_changes_the_email(api, ada):
    api.put("/api/v1/contacts/update", {"userId": "u-ada", "email": "ada@lovelace.dev"}, format="json")
    ada.refresh_from_db()
    assert ada.email == "ada@lovelace.dev"


def test_update_errors(api, team, ada):
    Contact.objects.create(team=team, email="taken@example.com")
    assert_error(api.put("/api/v1/contacts/update", {"firstName": "X"}, format="json"), 400, "email or a userId")
    assert_error(
        api.put("/api/v1/contacts/update", {"userId": "u-ada", "email": "taken@example.com"}, format="json"), 409
    )
    assert_error(api.put("/api/v1/contacts/update", {"userId": "u-nobody"}, format="json"), 400, "email")
    assert_error(api.post("/api/v1/contacts/update", {"email": ada.email}, format="json"), 405)


def test_find_by_email_or_user_id(api, ada, newsletter):
    ListMembership.objects.create(team=ada.team, contact=ada, mailing_list=newsletter)
    ada.properties = {"plan": "pro"}
    ada.save()
    expected = {
        "id": str(ada.pk), "email": "ada@example.com", "firstName": "Ada", "lastName": None, "source": "",
        "subscribed": True, "userGroup": "", "userId": "u-ada", "mailingLists": {str(newsletter.pk): True},
        "optInStatus": None, "plan": "pro",
    }  # fmt: skip
    assert body(api.get("/api/v1/contacts/find", {"email": "ADA@example.com"})) == [expected]
    assert body(api.get("/api/v1/contacts/find", {"userId": "u-ada"})) == [expected]
    assert body(api.get("/api/v1/contacts/find", {"email": "nobody@example.com"})) == []


@pytest.mark.parametrize("params", [{}, {"email": "a@example.com", "userId": "u"}, {"email": "nope"}])
def test_find_needs_one_valid_identifier(api, params):
    assert_error(api.get("/api/v1/contacts/find", params), 400)


def test_delete_contact(api, ada):
    assert_error(api.post("/api/v1/contacts/delete", {"email": "nobody@example.com"}, format="json"), 404)
    response = api.post("/api/v1/contacts/delete", {"userId": "u-ada"}, format="json")
    assert body(response) == {"success": True, "message": "Contact deleted."}
    assert not Contact.objects.exists()
    assert_error(api.post("/api/v1/contacts/delete", {}, format="json"), 400)


# --- properties, lists, suppression --------------------------------------------------------------


def test_properties_list_and_create(api, team):
    assert_error(
        api.post("/api/v1/contacts/properties", {"name": "plan", "type": "colour"}, format="json"), 400, "type"
    )
    assert_error(api.post("/api/v1/contacts/properties", {"name": "first name", "type": "string"}, format="json"), 400)
    assert_error(api.post("/api/v1/contacts/properties", {"name": "email", "type": "string"}, format="json"), 400)
    assert body(api.post("/api/v1/contacts/properties", {"name": "plan", "type": "string"}, format="json")) == {
        "success": True
    }
    assert_error(api.post("/api/v1/contacts/properties", {"name": "plan", "type": "number"}, format="json"), 409)
    custom = body(api.get("/api/v1/contacts/properties", {"list": "custom"}))
    # Stripe's billing properties are built in and typed, then the team's own
    assert custom[-1] == {"key": "plan", "label": "plan", "type": "string"}
    assert {"key": "mrr", "label": "MRR", "type": "number"} in custom and len(custom) == 15 + 1
    everything = body(api.get("/api/v1/contacts/properties"))
    assert {"key": "email", "label": "Email", "type": "string"} in everything and len(everything) == 8 + 15 + 1
    assert_error(api.get("/api/v1/contacts/properties", {"list": "some"}), 400, "list")


def test_mailing_lists(api, newsletter):
    assert body(api.get("/api/v1/lists")) == [
        {"id": str(newsletter.pk), "name": "Newsletter", "description": "Monthly", "isPublic": True}
    ]


def test_suppression_is_the_unsubscribed_state(api, ada):
    check = body(api.get("/api/v1/contacts/suppression", {"email": ada.email}))
    assert check == {
        "contact": {"id": str(ada.pk), "email": ada.email, "userId": "u-ada"},
        "isSuppressed": False,
        "removalQuota": {"limit": 100, "remaining": 100},
    }
    assert_error(api.delete(f"/api/v1/contacts/suppression?email={ada.email}"), 400, "not suppressed")
    Contact.objects.filter(pk=ada.pk).update(subscribed=False)
    assert body(api.get("/api/v1/contacts/suppression", {"userId": "u-ada"}))["isSuppressed"] is True
    removed = body(api.delete("/api/v1/contacts/suppression?userId=u-ada"))
    assert removed["success"] is True and removed["removalQuota"] == {"limit": 100, "remaining": 99}
    ada.refresh_from_db()
    assert ada.subscribed is True
    assert_error(api.get("/api/v1/contacts/suppression", {"email": "nobody@example.com"}), 404)


# --- events --------------------------------------------------------------------------------------


def test_send_event_creates_the_contact_and_starts_loops(api, team, make_loop):
    loop = make_loop(team)  # "Stripe - Payment Failed", triggered by failedPayment
    response = api.post(
        "/api/v1/events/send",
        {"email": "new@example.com", "firstName": "New", "plan": "pro", "eventName": "failedPayment",
         "eventProperties": {"amount_formatted": "$9.00"}},
        format="json",
    )  # fmt: skip
    assert body(response) == {"success": True}
    contact = Contact.objects.get(team=team, email="new@example.com")
    assert (contact.first_name, contact.properties, contact.source) == ("New", {"plan": "pro"}, "API")
    event = Event.objects.get(team=team)
    assert (event.name, event.properties, event.source, event.contact_id) == (
        "failedPayment", {"amount_formatted": "$9.00"}, "API", contact.pk,
    )  # fmt: skip
    assert LoopRun.objects.filter(loop=loop, event=event).exists()


def test_send_event_is_idempotent_with_a_key(api, team, ada):
    headers = {"HTTP_IDEMPOTENCY_KEY": "order-42"}
    payload = {"userId": "u-ada", "eventName": "ordered"}
    first = api.post("/api/v1/events/send", payload, format="json", **headers)
    second = api.post("/api/v1/events/send", {**payload, "eventName": "other"}, format="json", **headers)
    assert body(first) == body(second) == {"success": True}
    assert second["Idempotent-Replayed"] == "true"
    assert list(Event.objects.values_list("name", flat=True)) == ["ordered"]
    api.post("/api/v1/events/send", payload, format="json", HTTP_IDEMPOTENCY_KEY="order-43")
    assert Event.objects.count() == 2


def test_an_idempotency_key_expires_after_24_hours(api, ada):
    from api.models import IdempotencyRecord

    payload = {"email": ada.email, "eventName": "ordered"}
    api.post("/api/v1/events/send", payload, format="json", HTTP_IDEMPOTENCY_KEY="k")
    IdempotencyRecord.objects.update(created_at=timezone.now() - timezone.timedelta(hours=25))
    api.post("/api/v1/events/send", payload, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert Event.objects.count() == 2


def test_the_same_idempotency_key_in_two_teams_is_two_keys(api, other_api, ada, other_team):
    Contact.objects.create(team=other_team, email=ada.email)
    api.post("/api/v1/events/send", {"email": ada.email, "eventName": "a"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    other_api.post(
        "/api/v1/events/send", {"email": ada.email, "eventName": "a"}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    assert Event.objects.filter(team=ada.team).count() == 1 and Event.objects.filter(team=other_team).count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "a@example.com"}, "eventName"),
        ({"email": "a@example.com", "eventName": "has spaces"}, "no spaces"),
        ({"eventName": "x"}, "email or a userId"),
        ({"userId": "u-nobody", "eventName": "x"}, "email"),
        ({"email": "a@example.com", "eventName": "x", "eventProperties": {"deep": {"a": 1}}}, "eventProperties.deep"),
        ({"email": "a@example.com", "eventName": "x", "eventProperties": "nope"}, "eventProperties"),
    ],
)
def test_send_event_errors_fire_nothing(api, payload, field):
    assert_error(api.post("/api/v1/events/send", payload, format="json"), 400, field)
    assert not Event.objects.exists() and not Contact.objects.exists()


def test_a_failed_request_with_a_key_replays_its_error(api):
    headers = {"HTTP_IDEMPOTENCY_KEY": "bad-1"}
    first = api.post("/api/v1/events/send", {"email": "a@example.com"}, format="json", **headers)
    again = api.post("/api/v1/events/send", {"email": "a@example.com", "eventName": "x"}, format="json", **headers)
    assert first.status_code == again.status_code == 400 and body(first) == body(again)
    assert not Event.objects.exists()


def test_list_events_filters_and_pages(api, team, ada):
    for index in range(25):
        Event.objects.create(team=team, contact=ada, name="seen" if index % 2 else "other", properties={"i": index})
    page = body(api.get("/api/v1/events", {"perPage": 10}))
    assert page["pagination"]["returnedResults"] == 10 and page["data"][0]["eventProperties"] == {"i": 24}
    second = body(api.get("/api/v1/events", {"perPage": 10, "cursor": page["pagination"]["nextCursor"]}))
    assert second["data"][0]["eventProperties"] == {"i": 14}
    named = body(api.get("/api/v1/events", {"name": "seen", "email": "ADA@example.com", "perPage": 50}))
    assert len(named["data"]) == 12 and {e["eventName"] for e in named["data"]} == {"seen"}
    assert named["data"][0]["email"] == ada.email and named["data"][0]["userId"] == "u-ada"
    assert body(api.get("/api/v1/events", {"after": timezone.now().isoformat()}))["data"] == []
    huge = base64.urlsafe_b64encode(b"9" * 30).decode()
    for params in ({"after": "yesterday"}, {"perPage": 5}, {"cursor": "%%%"}, {"cursor": huge}, {"name": "a\x00"}):
        assert_error(api.get("/api/v1/events", params), 400)


def test_list_events_after_any_offset(api, team, ada):
    """Python takes offsets up to 23:59, PostgreSQL up to 15:59: both filter, never a 500."""
    Event.objects.create(team=team, contact=ada, name="seen")
    assert len(body(api.get("/api/v1/events", {"after": "1735-03-01T22:38:48+17:24"}))["data"]) == 1
    assert body(api.get("/api/v1/events", {"after": "9999-12-30T20:00:00-23:00"}))["data"] == []
    for moment in ("0001-01-01T00:00:00+01:00", "9999-12-31T20:00:00-23:00"):  # outside UTC's years 1-9999
        assert_error(api.get("/api/v1/events", {"after": moment}), 400, "year 1")


def test_list_deliveries(api, team, make_endpoint):
    endpoint = make_endpoint(team)
    for status in ("processed", "failed", "ignored"):
        Delivery.objects.create(
            team=team, endpoint=endpoint, stripe_event_id=f"evt_{status}", event_type="invoice.paid",
            payload={}, status=status, last_error="boom" if status == "failed" else "",
            ignored_reason="unsupported_type" if status == "ignored" else "",
        )  # fmt: skip
    failed = body(api.get("/api/v1/webhooks/deliveries", {"status": "failed"}))
    assert [d["stripeEventId"] for d in failed["data"]] == ["evt_failed"] and failed["data"][0]["error"] == "boom"
    assert len(body(api.get("/api/v1/webhooks/deliveries"))["data"]) == 3
    assert_error(api.get("/api/v1/webhooks/deliveries", {"status": "lost"}), 400, "status")


# --- transactional -------------------------------------------------------------------------------


@pytest.fixture
def welcome(team):
    return TransactionalEmail.objects.create(
        team=team, public_id="welcome-1", name="Welcome", subject="Welcome, {{ data.name }}",
        body="Reset here: {{ data.url }}", required_variables=["name"],
    )  # fmt: skip


def test_transactional_is_recorded_and_sent(api, team, welcome, smtp_server):
    response = api.post(
            "/api/v1/transactional",
            {"transactionalId": "welcome-1", "email": "sam@example.com", "addToAudience": True,
             "dataVariables": {"name": "Sam", "url": "https://example.com/r/1"}},
            format="json",
        )  # fmt: skip
    assert body(response) == {"success": True}
    assert EmailMessage.objects.get(transactional=welcome).status == "queued"
    emails_drain()  # what the woken worker runs
    message = EmailMessage.objects.get(transactional=welcome)
    assert (message.to_email, message.subject, message.contact.email) == (
        "sam@example.com", "Welcome, Sam", "sam@example.com",
    )  # fmt: skip
    assert message.status == "sent"
    [received] = smtp_server.messages
    assert received["Subject"] == "Welcome, Sam" and "List-Unsubscribe" not in received
    assert "https://example.com/r/1" in received.get_body(preferencelist=("plain",)).get_content()


def test_transactional_goes_to_unsubscribed_contacts_and_needs_no_contact(api, team, welcome, ada):
    Contact.objects.filter(pk=ada.pk).update(subscribed=False)
    api.post("/api/v1/transactional", {"transactionalId": "welcome-1", "email": ada.email,
             "dataVariables": {"name": "Ada"}}, format="json")  # fmt: skip
    api.post("/api/v1/transactional", {"transactionalId": "welcome-1", "email": "stranger@example.com",
             "dataVariables": {"name": "S"}}, format="json")  # fmt: skip
    messages = {m.to_email: m for m in EmailMessage.objects.all()}
    assert messages[ada.email].contact_id == ada.pk and messages["stranger@example.com"].contact is None
    assert not Contact.objects.filter(email="stranger@example.com").exists()


@pytest.mark.parametrize(
    ("payload", "status", "text"),
    [
        ({"transactionalId": "nope", "email": "a@example.com"}, 404, "not found"),
        ({"transactionalId": "welcome-1", "email": "a@example.com"}, 400, "dataVariables.name"),
        ({"transactionalId": "welcome-1", "email": "bad"}, 400, "email"),
        ({"transactionalId": "welcome-1", "email": "a@example.com", "dataVariables": {"name": "x"},
          "attachments": [{"filename": "a.txt"}]}, 400, "attachments"),
    ],
)  # fmt: skip
def test_transactional_errors_send_nothing(api, welcome, payload, status, text):
    assert_error(api.post("/api/v1/transactional", payload, format="json"), status, text)
    assert not EmailMessage.objects.exists()


# --- errors everywhere ---------------------------------------------------------------------------


def test_malformed_json_is_400(api):
    for path in ("/api/v1/contacts/create", "/api/v1/events/send", "/api/v1/transactional"):
        assert_error(api.post(path, '{"email": ', content_type="application/json"), 400, "not valid JSON")
        assert_error(api.post(path, "[1, 2]", content_type="application/json"), 400, "JSON object")


def test_unknown_endpoint_is_a_json_404(api):
    assert_error(api.get("/api/v1/contacts/everything"), 404)
    assert_error(APIClient().get("/api/v2/whatever"), 404)


def test_too_large_a_body_is_413(api, settings):
    settings.API_MAX_BODY_BYTES = 1000
    response = api.post("/api/v1/contacts/create", {"email": "a@example.com", "blob": "x" * 2000}, format="json")
    assert_error(response, 413)
    assert not Contact.objects.exists()


def test_form_encoded_bodies_are_refused(api):
    response = api.post("/api/v1/contacts/create", {"email": "a@example.com"})  # multipart
    assert_error(response, 415)


# --- tenancy -------------------------------------------------------------------------------------


def test_a_key_never_reaches_another_team(api, other_api, team, other_team, ada, newsletter, welcome):
    ContactProperty.objects.create(team=team, key="secretPlan", label="x", type="string")
    Event.objects.create(team=team, contact=ada, name="private")
    assert body(other_api.get("/api/v1/api-key"))["teamName"] == "Globex"
    assert body(other_api.get("/api/v1/contacts/find", {"email": ada.email})) == []
    assert body(other_api.get("/api/v1/contacts/find", {"userId": "u-ada"})) == []
    assert_error(other_api.post("/api/v1/contacts/delete", {"email": ada.email}, format="json"), 404)
    assert_error(other_api.get("/api/v1/contacts/suppression", {"email": ada.email}), 404)
    assert body(other_api.get("/api/v1/lists")) == []
    assert "secretPlan" not in {
        p["key"] for p in body(other_api.get("/api/v1/contacts/properties", {"list": "custom"}))
    }
    assert body(other_api.get("/api/v1/events"))["data"] == []
    assert body(other_api.get("/api/v1/webhooks/deliveries"))["data"] == []
    assert_error(
        other_api.post("/api/v1/transactional", {"transactionalId": "welcome-1", "email": "a@example.com",
                       "dataVariables": {"name": "x"}}, format="json"), 404,
    )  # fmt: skip
    assert_error(
        other_api.put("/api/v1/contacts/update", {"email": "z@example.com", "mailingLists": {str(newsletter.pk): True}},
                      format="json"), 400, "mailingLists",
    )  # fmt: skip
    # The same email in the other team is the other team's own contact.
    other_api.put("/api/v1/contacts/update", {"email": ada.email, "firstName": "Other"}, format="json")
    ada.refresh_from_db()
    assert ada.first_name == "Ada" and Contact.objects.get(team=other_team).first_name == "Other"


# --- rate limit ----------------------------------------------------------------------------------


def test_rate_limit_headers_and_429(api, other_api, settings, monkeypatch):
    settings.API_RATE_LIMIT = 3
    settings.API_RATE_LIMIT_REDIS_URL = ""  # counted in this process; the Redis count: test_ratelimit.py
    monkeypatch.setattr("api.ratelimit.clock", lambda: 1_900_000_000.5)  # all four calls in one second
    responses = [api.get("/api/v1/api-key") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r["x-ratelimit-remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert responses[0]["x-ratelimit-limit"] == "3"
    assert_error(responses[3], 429, "Rate limit")
    assert other_api.get("/api/v1/api-key").status_code == 200  # another team has its own count


def test_a_refused_body_with_an_idempotency_key_is_a_400_and_frees_the_key(api, ada):
    raw = '{"eventName": "x", "email": "ada@example.com", "a\\u0000": 1}'
    first = api.post("/api/v1/events/send", raw, content_type="application/json", HTTP_IDEMPOTENCY_KEY="nul-1")
    assert_error(first, 400, "a\\u0000: Null characters are not allowed.")
    again = api.post(
        "/api/v1/events/send", {"email": ada.email, "eventName": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="nul-1"
    )
    assert again.status_code in {200, 400} and again.status_code != 409  # the key is not stuck "in progress"


def test_options_is_not_an_api_method(api):
    assert_error(api.options("/api/v1/contacts/create"), 405)


# --- review fixes: odd input is a 400, long values render, races resolve -----------------------------


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("post", "/api/v1/contacts/create", {"email": "a@example.com", "mailingLists": {"²": True}}),
        ("post", "/api/v1/contacts/create", {"email": "a@example.com", "mailingLists": {"9" * 30: True}}),
        ("get", "/api/v1/events", {"perPage": "²²"}),
    ],
)
def test_unicode_digits_and_huge_ids_are_400(api, method, path, payload):
    response = api.get(path, payload) if method == "get" else api.post(path, payload, format="json")
    assert_error(response, 400)


def test_deeply_nested_json_is_400(api):
    for depth in (40, 50_000):
        raw = '{"email": "a@example.com", "x": ' + "[" * depth + "]" * depth + "}"
        response = api.post("/api/v1/contacts/create", raw, content_type="application/json")
        assert_error(response, 400, "nested more than 32 levels deep (the API's limit)")
    assert not Contact.objects.exists()


def test_a_long_variable_is_cut_to_the_subject_limit(api, team):
    TransactionalEmail.objects.create(
        team=team, public_id="long-1", name="Long", subject="Hi {{ data.name }}", body="x"
    )
    response = api.post(
        "/api/v1/transactional",
        {"transactionalId": "long-1", "email": "a@example.com", "dataVariables": {"name": "n" * 1200}},
        format="json",
    )
    assert body(response) == {"success": True}
    assert len(EmailMessage.objects.get().subject) == 998


def test_an_abandoned_idempotency_claim_is_freed(api, team, ada):
    from api.models import IdempotencyRecord

    claim = IdempotencyRecord.objects.create(team=team, key="died", path="/api/v1/events/send")  # status 0
    payload = {"email": ada.email, "eventName": "x"}
    assert_error(api.post("/api/v1/events/send", payload, format="json", HTTP_IDEMPOTENCY_KEY="died"), 409)
    IdempotencyRecord.objects.filter(pk=claim.pk).update(created_at=timezone.now() - timezone.timedelta(minutes=6))
    assert body(api.post("/api/v1/events/send", payload, format="json", HTTP_IDEMPOTENCY_KEY="died")) == {
        "success": True
    }
    assert Event.objects.count() == 1


def test_a_deleted_transactional_template_still_sends_its_queued_email(api, team, welcome, ada, smtp_server):
    Contact.objects.filter(pk=ada.pk).update(subscribed=False)
    api.post(
        "/api/v1/transactional",
        {"transactionalId": "welcome-1", "email": ada.email, "dataVariables": {"name": "Ada"}},
        format="json",
    )
    welcome.delete()  # before the worker sends it
    emails_drain()
    message = EmailMessage.objects.get()
    assert message.status == "sent" and message.transactional_id is None
    [received] = smtp_server.messages
    assert "List-Unsubscribe" not in received


@pytest.mark.django_db(transaction=True)
def test_concurrent_sends_for_one_new_contact_all_land(postgres, team, key):
    import threading

    from django.db import connection

    barrier = threading.Barrier(6)
    statuses = []

    def send(index):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        barrier.wait()
        try:
            response = client.post(
                "/api/v1/events/send",
                {"email": "race@example.com", "eventName": "raced", f"p{index}": index},
                format="json",
            )
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 6
    contact = Contact.objects.get(team=team, email="race@example.com")
    assert Event.objects.filter(contact=contact, name="raced").count() == 6
    assert contact.properties == {f"p{i}": i for i in range(6)}  # no request's property lost


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/api/v1/contacts/create", '{"email": "a@example.com", "plan": "\\ud800"}'),
        ("/api/v1/contacts/update", '{"email": "a@example.com", "\\udfffkey": 1}'),
        ("/api/v1/events/send", '{"email": "a@example.com", "eventName": "x", "eventProperties": {"a": "\\ud800"}}'),
    ],
)
def test_a_lone_surrogate_in_a_body_is_a_400_naming_it(api, path, raw):
    method = api.put if path.endswith("update") else api.post
    response = method(path, raw, content_type="application/json")
    assert_error(response, 400, "Unpaired surrogates")
    assert not Contact.objects.exists()
