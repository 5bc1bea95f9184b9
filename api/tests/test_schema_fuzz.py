"""Schemathesis against the app's own OpenAPI schema: no 500, and every answer matches the schema.

The schema is loaded in-process from `/api/schema/?format=json` (the WSGI app, no server), and every
documented operation is fuzzed with valid and invalid input (schemathesis' examples, coverage and
fuzzing phases), each call authenticated with a real key of a real team (schemathesis drops the key
itself where it tests the missing-key case). Deterministic: Hypothesis runs derandomized and keeps no
example database, so a run on CI is the same as one here. LOOPSYNC_FUZZ_EXAMPLES=300 looks harder.
"""

import json
import os

import pytest
import schemathesis
import yaml
from django.core.management import call_command
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.services import team_create
from api.services import api_key_create
from contacts.models import MailingList
from contacts.services import contact_property_create, contact_upsert
from loops.models import TransactionalEmail
from loopsync.wsgi import application

SCHEMA_PATH = "/api/schema/?format=json"


@schemathesis.check
def error_is_loops_shaped(ctx, response, case):
    """Every error, documented or not (405, 415 too), is `{"success": false, "message": "..."}`."""
    if response.status_code < 400:
        return None
    body = response.json()
    if not (
        isinstance(body, dict)
        and set(body) == {"success", "message"}
        and body["success"] is False
        and isinstance(body["message"], str)
        and body["message"]
    ):
        raise AssertionError(f"{response.status_code} is not {{success: false, message}}: {body!r}")
    return None


CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    error_is_loops_shaped,
]
ERROR_STATUSES = {"400", "401", "429"}
EXAMPLES = int(os.environ.get("LOOPSYNC_FUZZ_EXAMPLES", "30"))

# What the seeded team has, so that generated finds, deletes and sends sometimes hit something.
SEEDED = {
    "email": ["ada@example.com", "bob@example.com"],
    "userId": ["user-ada", "user-bob"],
    "transactionalId": ["welcome"],
    "name": ["planName"],  # POST contacts/properties: an existing property, 409
    "eventName": ["signup"],
}
seeded_list_ids: list[str] = []  # mailing list ids of the current test's team

schema = schemathesis.openapi.from_wsgi(SCHEMA_PATH, application)


def _variants(values: dict) -> list[dict]:
    """The generated values, and copies with one known key at a time set to a seeded value."""
    out = [values]
    for key, seeded in SEEDED.items():
        if key in values:
            out.extend({**values, key: value} for value in seeded)
    if "mailingLists" in values and seeded_list_ids:
        out.append({**values, "mailingLists": {seeded_list_ids[0]: True}})
    return out


@schema.hook("flatmap_query")
def _seeded_query(context, query):
    return st.sampled_from(_variants(query)) if isinstance(query, dict) else st.just(query)


@schema.hook("flatmap_body")
def _seeded_body(context, body):
    return st.sampled_from(_variants(body)) if isinstance(body, dict) else st.just(body)


@pytest.fixture
def api_key(transactional_db, settings):
    """A real team with a real key, and a little data. Transactional: each request commits or fails on
    its own, as in production, so a database error in one call cannot poison the calls after it."""
    settings.API_RATE_LIMIT = 1_000_000
    team = team_create(name="Fuzz")
    contact_property_create(team=team, name="planName", type="string")
    newsletter = MailingList.objects.create(team=team, name="Newsletter", is_public=True)
    seeded_list_ids[:] = [str(newsletter.pk)]
    contact_upsert(
        team=team, email="ada@example.com", user_id="user-ada", fields={"first_name": "Ada"},
        properties={"planName": "pro"}, mailing_lists={str(newsletter.pk): True},
    )  # fmt: skip
    contact_upsert(team=team, email="bob@example.com", user_id="user-bob", fields={"subscribed": False})
    TransactionalEmail.objects.create(
        team=team, public_id="welcome", name="Welcome", subject="Hi", body="Hello", required_variables=[]
    )
    yield api_key_create(team=team, name="fuzz").key
    seeded_list_ids.clear()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one team and key per operation, shared by its examples
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
def test_api_conforms_to_its_schema(case, api_key):
    case.call_and_validate(headers={"Authorization": f"Bearer {api_key}"}, checks=CHECKS)


def _served_schema(client, path: str = SCHEMA_PATH) -> dict:
    response = client.get(path)
    assert response.status_code == 200
    return json.loads(response.content) if "json" in path else yaml.safe_load(response.content)


def test_schema_is_valid_openapi_3(tmp_path):
    # drf-spectacular validates against the OpenAPI 3 JSON schema; any generator warning fails too.
    call_command("spectacular", validate=True, fail_on_warn=True, file=str(tmp_path / "schema.yml"))
    generated = yaml.safe_load((tmp_path / "schema.yml").read_text())
    assert generated["openapi"].startswith("3.")
    assert generated["paths"]


def test_schema_is_served_as_yaml_and_json(client):
    as_yaml, as_json = _served_schema(client, "/api/schema/"), _served_schema(client)
    assert as_yaml == as_json
    assert as_json["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key from Settings → API.",
    }


def test_every_operation_documents_its_errors_and_key(client):
    document = _served_schema(client)
    error = document["components"]["schemas"]["Error"]
    assert set(error["properties"]) == {"success", "message"}
    assert "message" in error["required"]
    operations = [(method, path, op) for path, ops in document["paths"].items() for method, op in ops.items()]
    assert len(operations) >= 14
    for method, path, operation in operations:
        label = f"{method.upper()} {path}"
        assert path.startswith("/api/v1/"), label
        assert operation.get("security") == [{"bearerAuth": []}], label
        assert set(operation["responses"]) >= ERROR_STATUSES, label
        for status in ERROR_STATUSES:
            content = operation["responses"][status]["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/Error"}, f"{label} {status}"
