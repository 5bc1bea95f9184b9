"""The API's caps on properties, values, event properties and data variables: each a 400 that names the cap
and its setting, with nothing saved; and requests at the caps stay a handful of queries."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from contacts.models import Contact, ContactProperty
from contacts.services import contact_property_create
from loops.models import EmailMessage, Event, TransactionalEmail

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def body(response) -> dict:
    return json.loads(response.content)


def assert_error(response, status: int, *texts: str) -> str:
    assert response.status_code == status, response.content
    data = body(response)
    assert data["success"] is False and data["message"]
    for text in texts:
        assert text in data["message"], data["message"]
    return data["message"]


@pytest.fixture
def ada(team):
    return Contact.objects.create(team=team, email="ada@example.com", first_name="Ada", properties={"plan": "pro"})


# --- properties in one request ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "extra"),
    [
        ("post", "/api/v1/contacts/create", {}),
        ("put", "/api/v1/contacts/update", {}),
        ("post", "/api/v1/events/send", {"eventName": "signedUp"}),
    ],
)
def test_a_body_with_20000_new_keys_is_a_400_that_declares_nothing(
    api, team, method, path, extra, django_assert_max_num_queries
):
    payload = {"email": "new@example.com", **extra, **{f"p{index}": index for index in range(20_000)}}
    # The key, its last use and the contact's look-up, with savepoints: refused before a property is looked up.
    with django_assert_max_num_queries(10):
        response = getattr(api, method)(path, payload, format="json")
    assert_error(response, 400, "at most 100 custom properties", "CONTACT_PROPERTIES_PER_REQUEST", "20,000")
    assert not ContactProperty.objects.exists()
    assert not Contact.objects.exists() and not Event.objects.exists()


def test_the_request_cap_counts_existing_keys_too_and_follows_its_setting(api, team, ada, settings):
    settings.CONTACT_PROPERTIES_PER_REQUEST = 3
    for key in ("a", "b", "c", "d"):
        ContactProperty.objects.create(team=team, key=key, label=key, type="number")
    response = api.put("/api/v1/contacts/update", {"email": ada.email, "a": 1, "b": 2, "c": 3, "d": 4}, format="json")
    assert_error(response, 400, "at most 3 custom properties", "CONTACT_PROPERTIES_PER_REQUEST", "this one has 4")
    ada.refresh_from_db()
    assert ada.properties == {"plan": "pro"}
    assert (
        api.put("/api/v1/contacts/update", {"email": ada.email, "a": 1, "b": 2, "c": 3}, format="json").status_code
        == 200
    )


def test_a_request_at_the_cap_declares_its_new_keys_in_a_few_queries(api, team, django_assert_max_num_queries):
    payload = {"email": "new@example.com", **{f"p{index}": f"value {index}" for index in range(100)}}
    with django_assert_max_num_queries(20):  # one look-up and one insert for the 100, not a query per key
        response = api.post("/api/v1/contacts/create", payload, format="json")
    assert response.status_code == 200, response.content
    assert ContactProperty.objects.filter(team=team, type="string").count() == 100
    assert Contact.objects.get(team=team).properties == {f"p{index}": f"value {index}" for index in range(100)}


# --- properties per team ---------------------------------------------------------------------------


@pytest.fixture
def full_team(team, ada, settings):
    """A team at its cap of three properties (plan, seats, vip)."""
    settings.CONTACT_PROPERTIES_PER_TEAM = 3
    ContactProperty.objects.create(team=team, key="plan", label="Plan", type="string")
    ContactProperty.objects.create(team=team, key="seats", label="Seats", type="number")
    ContactProperty.objects.create(team=team, key="vip", label="VIP", type="boolean")
    return team


def test_at_the_team_cap_a_new_key_is_refused_and_nothing_is_saved(api, full_team, ada):
    response = api.put("/api/v1/contacts/update", {"email": ada.email, "plan": "team", "colour": "red"}, format="json")
    assert_error(response, 400, "at most 3 custom properties", "CONTACT_PROPERTIES_PER_TEAM", "colour")
    ada.refresh_from_db()
    assert ada.properties == {"plan": "pro"}  # all or nothing: the existing key in that request is not applied
    assert set(ContactProperty.objects.filter(team=full_team).values_list("key", flat=True)) == {"plan", "seats", "vip"}
    created = api.post("/api/v1/contacts/create", {"email": "new@example.com", "colour": "red"}, format="json")
    assert_error(created, 400, "CONTACT_PROPERTIES_PER_TEAM")
    assert not Contact.objects.filter(email="new@example.com").exists()
    event = api.post("/api/v1/events/send", {"email": ada.email, "eventName": "x", "colour": "red"}, format="json")
    assert_error(event, 400, "CONTACT_PROPERTIES_PER_TEAM")
    assert not Event.objects.exists()
    declared = api.post("/api/v1/contacts/properties", {"name": "colour", "type": "string"}, format="json")
    assert_error(declared, 400, "at most 3 custom properties", "CONTACT_PROPERTIES_PER_TEAM")
    assert not ContactProperty.objects.filter(key="colour").exists()


def test_at_the_team_cap_existing_keys_still_update(api, full_team, ada):
    response = api.put(
        "/api/v1/contacts/update", {"email": ada.email, "plan": "team", "seats": 4, "vip": None}, format="json"
    )
    assert response.status_code == 200, response.content
    ada.refresh_from_db()
    assert ada.properties == {"plan": "team", "seats": 4}
    # A null for a key the team does not have declares nothing, so it is not refused either.
    assert api.put("/api/v1/contacts/update", {"email": ada.email, "colour": None}, format="json").status_code == 200
    # An existing name is still a 409, not the cap.
    existing = api.post("/api/v1/contacts/properties", {"name": "plan", "type": "string"}, format="json")
    assert_error(existing, 409, "exists already")


@pytest.mark.django_db(transaction=True)
def test_requests_racing_for_the_last_free_place_declare_one_key(postgres, team, key, settings):
    settings.CONTACT_PROPERTIES_PER_TEAM = 3
    for name in ("a", "b"):
        contact_property_create(team=team, name=name, type="string")
    barrier = threading.Barrier(5)
    statuses = []

    def send(index):
        from django.db import connection

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        barrier.wait()
        try:
            response = client.put(
                "/api/v1/contacts/update", {"email": f"c{index}@example.com", f"new{index}": index}, format="json"
            )
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 400, 400, 400, 400]
    assert ContactProperty.objects.filter(team=team).count() == 3


def test_another_teams_properties_do_not_count(api, other_team, team, settings):
    settings.CONTACT_PROPERTIES_PER_TEAM = 1
    ContactProperty.objects.create(team=other_team, key="theirs", label="x", type="string")
    assert (
        api.post("/api/v1/contacts/create", {"email": "a@example.com", "mine": "x"}, format="json").status_code == 200
    )
    assert list(ContactProperty.objects.filter(team=team).values_list("key", flat=True)) == ["mine"]


# --- the size of a value -------------------------------------------------------------------------


def test_an_over_long_property_value_is_a_400(api, team, ada, settings):
    response = api.put("/api/v1/contacts/update", {"email": ada.email, "note": "x" * 2001}, format="json")
    assert_error(response, 400, "note: A property value is at most 2,000 characters (PROPERTY_VALUE_MAX_CHARS).")
    assert not ContactProperty.objects.filter(key="note").exists()
    assert (
        api.put("/api/v1/contacts/update", {"email": ada.email, "note": "x" * 2000}, format="json").status_code == 200
    )
    settings.PROPERTY_VALUE_MAX_CHARS = 10
    response = api.put("/api/v1/contacts/update", {"email": ada.email, "note": "x" * 11}, format="json")
    assert_error(response, 400, "at most 10 characters", "PROPERTY_VALUE_MAX_CHARS")
    ada.refresh_from_db()
    assert ada.properties["note"] == "x" * 2000


# --- event properties ----------------------------------------------------------------------------


def test_event_properties_are_capped_in_count_and_size(api, ada, settings):
    settings.EVENT_PROPERTIES_PER_REQUEST = 5
    many = {"email": ada.email, "eventName": "x", "eventProperties": {f"p{i}": i for i in range(6)}}
    assert_error(
        api.post("/api/v1/events/send", many, format="json"),
        400,
        "eventProperties: At most 5 event properties in one request (EVENT_PROPERTIES_PER_REQUEST); this one has 6.",
    )
    long = {"email": ada.email, "eventName": "x", "eventProperties": {"note": "x" * 2001}}
    assert_error(
        api.post("/api/v1/events/send", long, format="json"),
        400,
        "eventProperties.note: A value is at most 2,000 characters (PROPERTY_VALUE_MAX_CHARS).",
    )
    assert not Event.objects.exists()
    fine = {"email": ada.email, "eventName": "x", "eventProperties": {f"p{i}": "x" * 2000 for i in range(5)}}
    assert api.post("/api/v1/events/send", fine, format="json").status_code == 200
    assert Event.objects.get().properties == fine["eventProperties"]


# --- data variables ------------------------------------------------------------------------------


@pytest.fixture
def receipt(team):
    return TransactionalEmail.objects.create(
        team=team, public_id="receipt-1", name="Receipt", subject="Receipt", body="{{ data.note }}"
    )


def test_data_variables_are_capped_in_count_and_size(api, receipt, settings):
    settings.DATA_VARIABLES_PER_REQUEST = 3
    settings.DATA_VARIABLE_MAX_CHARS = 50

    def send(variables):
        payload = {"transactionalId": "receipt-1", "email": "a@example.com", "dataVariables": variables}
        return api.post("/api/v1/transactional", payload, format="json")

    assert_error(
        send({"a": 1, "b": 2, "c": 3, "d": 4}),
        400,
        "dataVariables: At most 3 data variables in one request (DATA_VARIABLES_PER_REQUEST); this one has 4.",
    )
    assert_error(
        send({"note": "x" * 51}),
        400,
        "dataVariables.note: A value is at most 50 characters (DATA_VARIABLE_MAX_CHARS).",
    )
    assert_error(send({"items": [{"name": "ok"}, {"name": "y" * 51}]}), 400, "dataVariables.items[1].name", "50")
    assert not EmailMessage.objects.exists()
    assert send({"note": "x" * 50, "items": [{"name": "ok"}]}).status_code == 200
    assert EmailMessage.objects.count() == 1


def test_data_variables_allow_longer_text_than_properties_by_default(api, receipt):
    payload = {"transactionalId": "receipt-1", "email": "a@example.com", "dataVariables": {"note": "x" * 10_000}}
    assert api.post("/api/v1/transactional", payload, format="json").status_code == 200
    payload["dataVariables"]["note"] += "x"
    assert_error(api.post("/api/v1/transactional", payload, format="json"), 400, "10,000", "DATA_VARIABLE_MAX_CHARS")


# --- the settings --------------------------------------------------------------------------------


def test_the_caps_are_read_from_the_environment():
    names = [
        "CONTACT_PROPERTIES_PER_REQUEST",
        "CONTACT_PROPERTIES_PER_TEAM",
        "PROPERTY_VALUE_MAX_CHARS",
        "EVENT_PROPERTIES_PER_REQUEST",
        "DATA_VARIABLES_PER_REQUEST",
        "DATA_VARIABLE_MAX_CHARS",
    ]
    script = "import django; django.setup(); from django.conf import settings; " + (
        f"print([getattr(settings, name) for name in {names!r}])"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "loopsync.settings", "DEBUG": "true"}
    defaults = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={k: v for k, v in env.items() if k not in names},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert defaults.stdout.strip() == "[100, 500, 2000, 100, 100, 10000]", defaults.stderr
    configured = subprocess.run(  # noqa: S603
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**env, **{name: str(index + 1) for index, name in enumerate(names)}},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert configured.stdout.strip() == "[1, 2, 3, 4, 5, 6]", configured.stderr
