"""Hostile and malformed webhooks, each signed for real: never a 500, never lost without a trace.

What cannot be stored is a 400 with its reason and leaves nothing behind; what can be stored but not used is
kept as ignored with its reason. A fuzz test mutates every supported fixture and checks both answers hold.
"""

import copy
import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURE_OF_TYPE, fixture_json, sign
from contacts.models import Contact
from loops.models import EmailMessage
from loops.services.runs import runs_drain
from loops.services.sending import emails_drain
from webhooks.models import Delivery
from webhooks.services import processing
from webhooks.stripe_events import SUPPORTED_EVENTS

pytestmark = pytest.mark.django_db

FAILED = "pay/invoice.payment_failed.json"  # a live-mode event: the default endpoint is a live one


def failed(**changes) -> dict:
    payload = fixture_json(FAILED)
    payload.update(changes)
    return payload


def post_raw(client, endpoint, body: str):
    return client.post(
        endpoint.get_receive_path(), data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body)
    )


@pytest.mark.parametrize("depth", [100, 5_000, 100_000])
def test_deeply_nested_json_is_a_400_before_anything_is_stored(endpoint, client, depth):
    body = "[" * depth + "]" * depth
    response = post_raw(client, endpoint, body)
    assert response.status_code == 400
    assert "nested" in response.json()["error"]
    assert not Delivery.objects.exists()


def test_deeply_nested_json_on_an_unknown_endpoint_is_a_404(client):
    body = "[" * 100_000 + "]" * 100_000
    response = client.post(
        f"/webhooks/stripe/{uuid.uuid4()}/", data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE="x"
    )
    assert response.status_code == 404


def test_deeply_nested_value_inside_a_real_event_is_a_400(endpoint, client):
    payload = failed()
    payload["data"]["object"]["metadata"] = json.loads("[" * 200 + "]" * 200)
    response = post_raw(client, endpoint, json.dumps(payload))
    assert response.status_code == 400 and "nested more than 64 levels" in response.json()["error"]
    assert not Delivery.objects.exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"id": "evt_" + "x" * 252}, "id must be text of 1 to 255 characters"),
        ({"id": ""}, "id must be text of 1 to 255 characters"),
        ({"id": 42}, "id must be text of 1 to 255 characters"),
        ({"type": "invoice." + "x" * 200}, "type must be text of 1 to 128 characters"),
        ({"type": ["invoice.paid"]}, "type must be text"),
        ({"api_version": "2025-" + "9" * 100}, "api_version must be text of at most 64 characters"),
        ({"account": "acct_" + "x" * 300}, "account must be text of at most 255 characters"),
        ({"account": {"id": "acct_1"}}, "account must be text"),
        ({"created": 10**20}, "created must be a Unix time"),
        ({"created": -5}, "created must be a Unix time"),
        ({"created": "1745433962"}, "created must be a Unix time"),
        ({"created": True}, "created must be a Unix time"),
        ({"livemode": "true"}, "livemode must be true or false"),
    ],
)
def test_a_signed_event_whose_envelope_cannot_be_stored_is_a_400(endpoint, client, changes, message):
    response = post_raw(client, endpoint, json.dumps(failed(**changes)))
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert not Delivery.objects.exists()


def test_longest_id_and_account_that_fit_are_stored(endpoint, client):
    payload = failed(id="evt_" + "x" * 251, account="acct_" + "y" * 250, api_version="v" * 64)
    assert post_raw(client, endpoint, json.dumps(payload)).status_code == 200
    delivery = Delivery.objects.get()
    assert (len(delivery.stripe_event_id), len(delivery.account), len(delivery.api_version)) == (255, 255, 64)


@pytest.mark.parametrize(
    "body",
    [
        # A NUL is valid JSON but no PostgreSQL text or jsonb value can hold it.
        json.dumps(failed(id="evt_\u0000nul")),
        json.dumps(failed(data={"object": {"customer_email": "a@example.com", "customer_name": "A\u0000B"}})),
        json.dumps(failed(data={"object": {"customer_email": "a@example.com", "metadata": {"k\u0000": "v"}}})),
    ],
)
def test_a_null_character_anywhere_is_a_400(endpoint, client, body):
    response = post_raw(client, endpoint, body)
    assert response.status_code == 400 and "Null characters are not allowed" in response.json()["error"]
    assert not Delivery.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        # A lone surrogate is valid JSON but not UTF-8: neither psycopg nor jsonb can take it.
        json.dumps(failed(id="evt_\ud800")),
        json.dumps(failed(data={"object": {"customer_email": "a@example.com", "customer_name": "A\udfffB"}})),
        json.dumps(failed(data={"object": {"customer_email": "a@example.com", "metadata": {"k\ud83d": "v"}}})),
        json.dumps(failed(data={"object": {"customer_email": "a\ud800@example.com"}})),
    ],
)
def test_a_lone_surrogate_anywhere_is_a_400(endpoint, client, body):
    assert "\\ud8" in body or "\\udf" in body  # written as JSON escapes, as a sender would
    response = post_raw(client, endpoint, body)
    assert response.status_code == 400 and "Unpaired surrogates" in response.json()["error"]
    assert not Delivery.objects.exists()


def test_characters_outside_the_bmp_are_stored_as_they_are(endpoint, client):
    payload = failed()
    payload["data"]["object"]["customer_name"] = "Ada 🚀 Lovelace"  # a surrogate pair in JSON's \u escapes
    assert post_raw(client, endpoint, json.dumps(payload)).status_code == 200
    processing.delivery_process(delivery_id=Delivery.objects.get().id)
    assert Contact.objects.get().last_name == "🚀 Lovelace"


def test_text_that_only_looks_like_an_escape_and_many_shallow_objects_are_stored(endpoint, client):
    """The parser's quick checks (no risky escape in the text, fewer brackets than the depth allowed) never
    refuse what the full walk would keep: an escaped backslash before u0000 is text, not a NUL, and a long
    list of small objects is wide, not deep."""
    payload = failed()
    payload["data"]["object"]["customer_name"] = "Back\\u0000slash"
    payload["data"]["object"]["metadata"] = {"lines": [{"n": n, "tags": [n]} for n in range(100)]}
    body = json.dumps(payload)
    assert "\\\\u0000" in body and body.count("{") > 64
    assert post_raw(client, endpoint, body).status_code == 200
    stored = Delivery.objects.get().payload["data"]["object"]
    assert stored["customer_name"] == "Back\\u0000slash" and len(stored["metadata"]["lines"]) == 100


def test_deep_nesting_among_many_brackets_is_still_a_400(endpoint, client):
    payload = failed()
    deep: list = []
    for _ in range(70):
        deep = [deep]
    payload["data"]["object"]["metadata"] = {"wide": [{} for _ in range(10)], "deep": deep}
    response = post_raw(client, endpoint, json.dumps(payload))
    assert response.status_code == 400 and "nested more than 64 levels" in response.json()["error"]
    assert not Delivery.objects.exists()


@pytest.mark.parametrize("number", ["1e999", "-1e999", "NaN", "Infinity", "-Infinity"])
def test_numbers_json_cannot_hold_are_a_400(endpoint, client, number):
    body = json.dumps(failed()).replace('"amount_due": 24900', f'"amount_due": {number}')
    assert number in body
    response = post_raw(client, endpoint, body)
    assert response.status_code == 400
    assert not Delivery.objects.exists()


def test_wrong_typed_customer_details_is_kept_as_ignored_with_its_reason(team, make_endpoint, client):
    endpoint = make_endpoint(team, triggers={"checkout.session.completed": "checkoutCompleted"})
    payload = fixture_json("stripe-ruby-mock/checkout.session.completed.json")
    payload["livemode"] = True
    payload["data"]["object"].update(customer_details="x", customer_email=None, collected_information=7, customer=8)
    response = post_raw(client, endpoint, json.dumps(payload))
    assert response.status_code == 200 and response.json() == {"status": "ignored", "reason": "no_email"}
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.ignored_reason) == ("ignored", "no_email")


def test_wrong_typed_customer_details_beside_an_email_still_syncs_the_contact(team, make_endpoint, client):
    endpoint = make_endpoint(team)
    payload = fixture_json("stripe-ruby-mock/checkout.session.completed.json")
    payload["livemode"] = True
    payload["data"]["object"].update(customer_details="x", customer_email="buyer@example.com")
    assert post_raw(client, endpoint, json.dumps(payload)).status_code == 200
    processing.delivery_process(delivery_id=Delivery.objects.get().id)
    assert Delivery.objects.get().status == "processed"
    assert Contact.objects.filter(team=team, email="buyer@example.com").exists()


@pytest.mark.parametrize("data", ["x", [], {"object": "x"}, {"object": None}, None])
def test_an_event_whose_data_is_not_an_object_is_kept_as_ignored(endpoint, client, data):
    response = post_raw(client, endpoint, json.dumps(failed(data=data)))
    assert response.status_code == 200 and response.json()["reason"] == "no_email"


@pytest.mark.parametrize("email", ["not an email", "a@b", "@example.com", "x" * 250 + "@example.com", "a b@c.com"])
def test_an_invalid_email_from_stripe_is_ignored_and_makes_no_contact_or_email(endpoint, client, make_loop, email):
    make_loop(endpoint.team)  # "Stripe - Payment Failed", active: it would email the contact
    payload = failed()
    payload["data"]["object"]["customer_email"] = email
    response = post_raw(client, endpoint, json.dumps(payload))
    assert response.status_code == 200 and response.json() == {"status": "ignored", "reason": "invalid_email"}
    delivery = Delivery.objects.get()
    assert delivery.get_ignored_reason_display() == "Invalid email"
    processing.deliveries_drain()
    runs_drain()
    emails_drain()
    assert not Contact.objects.exists() and not EmailMessage.objects.exists()


def test_replaying_an_invalid_email_keeps_it_ignored(endpoint, client):
    payload = failed()
    payload["data"]["object"]["customer_email"] = "not an email"
    post_raw(client, endpoint, json.dumps(payload))
    delivery = Delivery.objects.get()
    assert processing.delivery_replay(delivery=delivery) == "ignored"
    delivery.refresh_from_db()
    assert delivery.ignored_reason == "invalid_email" and not Contact.objects.exists()


def test_an_over_long_customer_id_is_dropped_not_a_failure(endpoint, client):
    payload = failed()
    payload["data"]["object"]["customer"] = "cus_" + "x" * 400
    post_raw(client, endpoint, json.dumps(payload))
    processing.delivery_process(delivery_id=Delivery.objects.get().id)
    assert Delivery.objects.get().status == "processed"
    assert Contact.objects.get().stripe_customer_id == ""


# --- fuzzing: any value in any field of any supported event ------------------------------------------

SUPPORTED_FIXTURES = FIXTURE_OF_TYPE
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30) | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)  # fmt: skip


def _paths(value, prefix=()):
    """Every key path of a fixture, down to its leaves."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*prefix, key)
            yield from _paths(child, (*prefix, key))


def _set(payload: dict, path: tuple, value) -> None:
    target = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def test_every_supported_type_has_a_fixture_to_fuzz():
    assert set(SUPPORTED_FIXTURES) == set(SUPPORTED_EVENTS)


@pytest.mark.parametrize("event_type", sorted(SUPPORTED_FIXTURES))
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_value_in_any_field_is_answered_and_never_a_500(team, make_endpoint, client, event_type, data):
    endpoint = make_endpoint(team)
    original = fixture_json(SUPPORTED_FIXTURES[event_type])
    original["livemode"] = True
    spec = SUPPORTED_EVENTS[event_type]
    if not spec.email(original):  # found by its customer: the contact exists, so billing state is applied
        Contact.objects.get_or_create(team=team, email="known@example.com", stripe_customer_id=spec.customer(original))
    payload = copy.deepcopy(original)
    paths = sorted(_paths(original), key=str)
    for path in data.draw(st.lists(st.sampled_from(paths), min_size=1, max_size=4, unique=True)):
        try:
            _set(payload, path, data.draw(JSON_VALUES))
        except (KeyError, TypeError):  # an earlier change replaced a parent of this path
            continue
    body = json.dumps(payload)
    response = client.post(
        endpoint.get_receive_path(), data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body)
    )
    assert response.status_code in {200, 400}, response.content
    if response.status_code == 400:
        assert not Delivery.objects.filter(endpoint=endpoint).exists()
        return
    delivery = Delivery.objects.get(endpoint=endpoint)
    processing.delivery_process(delivery_id=delivery.id)
    delivery.refresh_from_db()
    assert delivery.status in {"processed", "ignored", "failed"}
    if delivery.status == "failed":  # a permanent failure says why; it is never a crash of the drain
        assert delivery.last_error
    endpoint.delete()


@pytest.mark.parametrize("amount", ["lots", None, True, 10**40, 2.5])
def test_an_amount_that_is_not_one_leaves_the_templates_amount_out(endpoint, client, make_loop, amount):
    make_loop(endpoint.team)  # "Stripe - Payment Failed": `{% if event.amount_formatted %} of …{% endif %}`
    payload = failed()
    payload["data"]["object"]["amount_due"] = amount
    post_raw(client, endpoint, json.dumps(payload))
    processing.deliveries_drain()
    runs_drain()
    message = EmailMessage.objects.get()
    assert message.subject == "Your payment didn't go through"
    event_properties = Delivery.objects.get().status == "processed" and message.run.event.properties
    assert event_properties["amount"] is None and event_properties["amount_formatted"] is None
