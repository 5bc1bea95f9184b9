"""The receive view: every answer Stripe can get, and what was (or was not) stored for each."""

import json
import time
import uuid

import pytest

from conftest import SECRET, fixture_text, livemode, sign
from webhooks.models import Delivery

FAILED = "pay/invoice.payment_failed.json"

pytestmark = pytest.mark.django_db


def test_signed_supported_event_is_stored_and_answered_200(endpoint, post_webhook):
    response = post_webhook(endpoint, fixture_text(FAILED))
    assert response.status_code == 200
    delivery = Delivery.objects.get()
    assert delivery.endpoint == endpoint and delivery.team == endpoint.team
    assert delivery.stripe_event_id == "evt_fixture_pay_invoice_payment_failed"
    assert delivery.event_type == "invoice.payment_failed"
    assert delivery.livemode is True
    assert delivery.event_created.timestamp() == 1745433962
    assert delivery.payload == json.loads(fixture_text(FAILED))


def test_connect_account_and_api_version_are_recorded(team, make_endpoint, post_webhook):
    endpoint = make_endpoint(team)
    response = post_webhook(endpoint, fixture_text("dj-stripe/account.updated.connect_standard.json"))
    assert response.status_code == 200
    delivery = Delivery.objects.get()
    assert (delivery.account, delivery.api_version) == ("acct_1Fg9jUA3kq9o1aTc", "2020-08-27")


def test_path_without_trailing_slash_answers_without_redirect(endpoint, post_webhook):
    response = post_webhook(endpoint, fixture_text(FAILED), slash=False)
    assert response.status_code == 200
    assert Delivery.objects.count() == 1


def test_unknown_endpoint_is_404_and_stores_nothing(endpoint, post_webhook):
    response = post_webhook(f"/webhooks/stripe/{uuid.uuid4()}/", fixture_text(FAILED))
    assert response.status_code == 404
    assert not Delivery.objects.exists()


def test_disabled_endpoint_is_404(endpoint, post_webhook):
    endpoint.enabled = False
    endpoint.save()
    assert post_webhook(endpoint, fixture_text(FAILED)).status_code == 404
    assert not Delivery.objects.exists()


def test_missing_signature_header_is_400(endpoint, post_webhook):
    response = post_webhook(endpoint, fixture_text(FAILED), signature=None)
    assert response.status_code == 400
    assert "Stripe-Signature" in response.json()["error"]
    assert not Delivery.objects.exists()


def test_forged_signature_is_400(endpoint, post_webhook):
    response = post_webhook(endpoint, fixture_text(FAILED), secret="whsec_not_the_endpoints_secret")
    assert response.status_code == 400
    assert not Delivery.objects.exists()


def test_tampered_body_is_400(endpoint, post_webhook):
    body = fixture_text(FAILED)
    header = sign(body)
    response = post_webhook(endpoint, body.replace("customer@example.org", "attacker@example.org"), signature=header)
    assert response.status_code == 400
    assert not Delivery.objects.exists()


def test_stale_signature_is_400(endpoint, post_webhook):
    body = fixture_text(FAILED)
    stale = sign(body, timestamp=int(time.time()) - endpoint.tolerance - 5)
    response = post_webhook(endpoint, body, signature=stale)
    assert response.status_code == 400
    assert "tolerance" in response.json()["error"]
    assert not Delivery.objects.exists()


def test_garbled_signature_header_is_400(endpoint, post_webhook):
    assert post_webhook(endpoint, fixture_text(FAILED), signature="nonsense").status_code == 400
    assert not Delivery.objects.exists()


def test_endpoint_without_a_secret_yet_refuses_everything(team, make_endpoint, post_webhook):
    endpoint = make_endpoint(team, secret="")
    assert post_webhook(endpoint, fixture_text(FAILED)).status_code == 400
    assert not Delivery.objects.exists()


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '{"object": "event"}', '{"id": 5, "type": "x"}'])
def test_signed_body_that_is_not_an_event_is_400(endpoint, post_webhook, body):
    response = post_webhook(endpoint, body)
    assert response.status_code == 400
    assert not Delivery.objects.exists()


def test_signed_body_that_is_not_utf8_is_400(endpoint, client):
    body = b'{"id": "evt_1", "type": "customer.created", "x": "\xff"}'
    response = client.post(
        endpoint.get_receive_path(),
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(body.decode("latin-1")),
    )
    assert response.status_code == 400
    assert not Delivery.objects.exists()


def test_body_over_one_mebibyte_is_413(endpoint, post_webhook):
    payload = json.loads(fixture_text(FAILED))
    payload["padding"] = "x" * (1024 * 1024)
    response = post_webhook(endpoint, json.dumps(payload))
    assert response.status_code == 413
    assert not Delivery.objects.exists()


def test_get_is_405(endpoint, client):
    assert client.get(endpoint.get_receive_path()).status_code == 405


def test_duplicate_is_200_and_stored_once(endpoint, post_webhook):
    body = fixture_text(FAILED)
    first = post_webhook(endpoint, body)
    second = post_webhook(endpoint, body)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json() == {"status": "duplicate"}
    assert Delivery.objects.count() == 1


def test_same_event_at_two_endpoints_is_two_deliveries(team, make_endpoint, post_webhook):
    body = fixture_text(FAILED)
    for endpoint in (make_endpoint(team), make_endpoint(team)):
        assert post_webhook(endpoint, body).status_code == 200
    assert Delivery.objects.count() == 2


def test_unsupported_type_is_200_and_ignored(endpoint, post_webhook):
    response = post_webhook(endpoint, livemode(fixture_text("stripe-ruby-mock/charge.succeeded.json")))
    assert response.status_code == 200
    assert response.json() == {"status": "ignored", "reason": "unsupported_type"}
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.ignored_reason) == ("ignored", "unsupported_type")


def test_unticked_type_is_200_and_ignored(team, make_endpoint, post_webhook):
    endpoint = make_endpoint(team, disabled={"invoice.payment_failed"})
    response = post_webhook(endpoint, fixture_text(FAILED))
    assert response.status_code == 200
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.ignored_reason) == ("ignored", "type_disabled")


def test_event_without_email_is_200_and_ignored(endpoint, post_webhook):
    response = post_webhook(
        endpoint, livemode(fixture_text("stripe-ruby-mock/checkout.session.completed.setup_mode.json"))
    )
    assert response.status_code == 200
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.ignored_reason) == ("ignored", "no_email")


def test_secret_is_never_in_the_answer_or_logs(endpoint, post_webhook, caplog):
    with caplog.at_level("DEBUG"):
        bad = post_webhook(endpoint, fixture_text(FAILED), secret="whsec_wrong_wrong_wrong")
        good = post_webhook(endpoint, fixture_text(FAILED))
    assert SECRET not in bad.content.decode() + good.content.decode()
    assert SECRET not in caplog.text
