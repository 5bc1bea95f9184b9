"""Every Stripe fixture goes through its extractor, or is ignored, with what it carries asserted."""

import pytest

from conftest import FIXTURES, fixture_json
from webhooks.money import amount_format
from webhooks.stripe_events import SUPPORTED_EVENTS

# fixture → (email, full name, customer id, properties that must be present with these values)
EXTRACTED = {
    "dj-stripe/customer.created.with_name.json": (
        "jane.austen@example.com",
        "Jane Austen",
        "cus_example_with_bank_account",
        {},
    ),
    "dj-stripe/customer.created.email_only.json": ("michael.smith@example.com", "", "cus_6lsBvm5rJ0zyHc", {}),
    "pay/checkout.session.completed.subscription_mode.json": (
        "jordan.rivera@example.com",
        "Jordan Rivera",
        "cus_M5wW9RPFk9xNZ5",
        {
            "amount": 1900,
            "amount_formatted": "$19.00",
            "amount_total": 1900,
            "currency": "USD",
            "mode": "subscription",
            "payment_status": "paid",
            "subscription_id": "sub_1LNkeSKXBGcbgpbZ7jMqOPSi",
        },
    ),
    "stripe-ruby-mock/checkout.session.completed.json": (
        "stripe@example.com",
        "",
        "cus_00000000000000",
        {"amount": 3000, "amount_formatted": "$30.00", "mode": "payment", "payment_status": "paid"},
    ),
    "stripe-ruby-mock/checkout.session.completed.payment_mode.json": (
        "example@example.com",
        "",
        "cus_00000000000000",
        {"amount": 25000, "amount_formatted": "$250.00", "mode": "payment"},
    ),
    "pay/invoice.paid.json": (
        "missouri@example.org",
        "Missouri",
        "cus_S9YwWMaQEgeJYO",
        {
            "invoice_id": "in_1RFFohKXBGcbgpbZk9MxzDMc",
            "amount": 24512,
            "amount_formatted": "$245.12",
            "amount_paid": 24512,
            "amount_due": 24512,
            "subtotal": 25230,
            "subtotal_formatted": "$252.30",
            "currency": "USD",
            "invoice_number": "228BBE4A-0001",
            "attempt_count": 1,
            "status": "paid",
            "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1E4bfnKXBGcbgpbZ/test_YWNjdF8xRTRiZm5LWEJHY2JncGJaLF9TOVl3TTZrYkdYZEw2c3V0dGlzcDE4OWtza2Fsb05GLDEzNTUyNzE3MA0200LA91Q560?s=db",
            "invoice_pdf_url": "https://pay.stripe.com/invoice/acct_1E4bfnKXBGcbgpbZ/test_YWNjdF8xRTRiZm5LWEJHY2JncGJaLF9TOVl3TTZrYkdYZEw2c3V0dGlzcDE4OWtza2Fsb05GLDEzNTUyNzE3MA0200LA91Q560/pdf?s=db",
        },
    ),
    "pay/invoice.payment_failed.json": (
        "customer@example.org",
        "Example Customer",
        "cus_1234",
        {
            "invoice_id": "in_1234",
            "amount": 24900,
            "amount_formatted": "$249.00",
            "amount_due": 24900,
            "amount_paid": 0,
            "amount_remaining_formatted": "$249.00",
            "currency": "USD",
            "invoice_number": "F612594F-0002",
            "subscription_id": "sub_1234",  # at parent.subscription_details since API version 2025-03-31
            "hosted_invoice_url": "https://invoice.stripe.com/",
            "invoice_pdf_url": "https://pay.stripe.com/",
            "attempt_count": 1,
            "billing_reason": "subscription_cycle",
            "next_payment_attempt": "2025-04-25T03:46:23+00:00",
        },
    ),
    "pay/invoice.upcoming.json": (
        "customer@example.org",
        "Example Customer",
        "cus_L7lJPQIi3GxrTG",
        {
            "invoice_id": "",
            "amount": 1900,
            "amount_formatted": "$19.00",
            "currency": "USD",
            "invoice_number": "",
            "billing_reason": "upcoming",
            "status": "draft",
            "attempt_count": 0,
        },
    ),
}

# fixture → why it can't be processed: its type isn't supported, or its object has no email
NOT_PROCESSABLE = {
    "dj-stripe/account.updated.connect_standard.json": "unsupported",
    "openapi/event.plan.created.json": "unsupported",
    "pay/account.updated.json": "unsupported",
    "pay/charge.updated.json": "unsupported",
    "stripe-ruby-mock/charge.succeeded.json": "unsupported",
    "stripe-ruby-mock/customer.deleted.json": "unsupported",
    "stripe-ruby-mock/customer.subscription.created.json": "unsupported",
    "stripe-ruby-mock/customer.created.json": "no email",
    "stripe-ruby-mock/customer.updated.json": "no email",
    "pay/customer.updated.json": "no email",
    "stripe-ruby-mock/checkout.session.completed.setup_mode.json": "no email",
    "stripe-ruby-mock/invoice.paid.json": "no email",
    "stripe-ruby-mock/invoice.payment_failed.json": "no email",
    "stripe-ruby-mock/invoice.upcoming.json": "no email",
}

# Bare objects, not events: their shapes are checked by wrapping them as the event Stripe would send.
BARE_OBJECTS = {
    "openapi/object.customer.json": ("customer.created", ""),
    "openapi/object.checkout.session.json": ("checkout.session.completed", "example@example.com"),
    "openapi/object.invoice.json": ("invoice.paid", ""),
}


def test_every_fixture_is_classified():
    on_disk = {str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*.json")}
    assert on_disk == set(EXTRACTED) | set(NOT_PROCESSABLE) | set(BARE_OBJECTS)


@pytest.mark.parametrize("name", sorted(EXTRACTED))
def test_extractor_reads_contact_and_properties(name):
    payload = fixture_json(name)
    email, full_name, customer_id, properties = EXTRACTED[name]
    spec = SUPPORTED_EVENTS[payload["type"]]
    assert spec.email(payload) == email
    extracted = spec.extract(payload)
    assert (extracted.email, extracted.full_name, extracted.customer_id) == (email, full_name, customer_id)
    for key, value in properties.items():
        assert extracted.properties[key] == value, key


@pytest.mark.parametrize("name", sorted(NOT_PROCESSABLE))
def test_fixture_without_type_or_email_is_not_processable(name):
    payload = fixture_json(name)
    spec = SUPPORTED_EVENTS.get(payload["type"])
    if NOT_PROCESSABLE[name] == "unsupported":
        assert spec is None
    else:
        assert spec is not None and spec.email(payload) == ""


@pytest.mark.parametrize("name", sorted(BARE_OBJECTS))
def test_newest_object_shapes(name):
    event_type, email = BARE_OBJECTS[name]
    payload = {"id": "evt_x", "type": event_type, "data": {"object": fixture_json(name)}}
    assert SUPPORTED_EVENTS[event_type].email(payload) == email


def test_customer_properties_are_only_the_contact():
    extracted = SUPPORTED_EVENTS["customer.created"].extract(fixture_json("dj-stripe/customer.created.with_name.json"))
    assert extracted.properties == {}


def test_email_is_trimmed_and_previous_email_read_from_customer_update():
    payload = {
        "id": "evt_1",
        "type": "customer.updated",
        "data": {
            "object": {"id": "cus_1", "email": "  new@example.com\n", "name": " Ada  Lovelace "},
            "previous_attributes": {"email": "old@example.com"},
        },
    }
    extracted = SUPPORTED_EVENTS["customer.updated"].extract(payload)
    assert extracted.email == "new@example.com"
    assert extracted.full_name == "Ada  Lovelace"
    assert extracted.previous_email == "old@example.com"


def test_expanded_customer_object_yields_its_id():
    payload = {
        "id": "evt_1",
        "type": "invoice.paid",
        "data": {"object": {"customer": {"id": "cus_9", "object": "customer"}, "customer_email": "a@b.co"}},
    }
    assert SUPPORTED_EVENTS["invoice.paid"].extract(payload).customer_id == "cus_9"


def test_checkout_falls_back_to_customer_email():
    payload = {
        "id": "evt_1",
        "type": "checkout.session.completed",
        "data": {"object": {"customer_details": None, "customer_email": "pay@example.com"}},
    }
    assert SUPPORTED_EVENTS["checkout.session.completed"].email(payload) == "pay@example.com"


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (24900, "usd", "$249.00"),
        (500, "jpy", "¥500"),
        (1234567, "eur", "€12,345.67"),
        (12345, "kwd", "12.345 KWD"),
        (999, "xyz", "9.99 XYZ"),
        (-500, "usd", "-$5.00"),
        (None, "usd", ""),
        (100, "", ""),
    ],
)
def test_amount_format(amount, currency, expected):
    assert amount_format(amount, currency) == expected
