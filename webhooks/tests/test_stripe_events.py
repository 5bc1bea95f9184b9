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

# New types whose objects carry an email (fixture → email, name, customer id, properties).
EXTRACTED.update(
    {
        "dj-stripe/customer.deleted.email_only.json": ("michael.smith@example.com", "", "cus_6lsBvm5rJ0zyHc", {}),
        "openapi/checkout.session.async_payment_succeeded.json": (
            "example@example.com",
            "",
            "",
            {"checkout_session_id": "cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY"},
        ),
        "openapi/checkout.session.async_payment_failed.json": (
            "example@example.com",
            "",
            "",
            {"mode": "payment", "payment_status": "unpaid"},
        ),
    }
)

# Objects with no email that name their Stripe customer (or, for a dispute, the charge): the contact is the
# one carrying that customer id. fixture → (customer or charge it names, properties with these values)
BY_CUSTOMER = {
    "stripe-ruby-mock/customer.created.json": ("cus_00000000000000", {}),
    "stripe-ruby-mock/customer.updated.json": ("cus_00000000000000", {}),
    "pay/customer.updated.json": ("cus_1234", {}),
    "stripe-ruby-mock/customer.deleted.json": ("cus_00000000000000", {}),
    "stripe-ruby-mock/invoice.paid.json": ("cus_00000000000000", {"amount": 2000, "amount_formatted": "$20.00"}),
    "stripe-ruby-mock/invoice.payment_failed.json": ("cus_00000000000000", {"status": "open"}),
    "stripe-ruby-mock/invoice.upcoming.json": ("cus_00000000000000", {"invoice_id": ""}),
    "stripe-ruby-mock/invoice.payment_action_required.json": (
        "cus_00000000000000",
        {"amount": 2000, "amount_formatted": "$20.00", "invoice_number": "7C43E171-0001", "status": "open"},
    ),
    "stripe-ruby-mock/customer.subscription.created.json": (
        "cus_00000000000000",
        {"subscription_id": "sub_000000000000000000000000", "status": "active", "plan_interval": "month",
         "plan_amount": 1500, "plan_amount_formatted": "$15.00", "mrr": 15.0, "cancel_at_period_end": False},
    ),
    "stripe-ruby-mock/customer.subscription.updated.json": (
        "cus_00000000000000",
        {"status": "active", "plan_changed": False},  # only its `schedule` changed
    ),
    "stripe-ruby-mock/customer.subscription.deleted.json": (
        "cus_00000000000000",
        {"status": "canceled", "mrr": 0, "canceled_at": "2022-03-26T18:41:37+00:00"},
    ),
    "stripe-ruby-mock/customer.subscription.trial_will_end.json": (
        "cus_00000000000000",
        # a subscription of the plans era: items of 1 × $1.00 and 5 × $2.00
        {"status": "trialing", "trial_end": "2013-10-09T01:05:30+00:00", "mrr": 0, "plan_amount": 100},
    ),
    "derived/customer.subscription.paused.json": ("cus_QXg1o8vcGmoR32", {"status": "paused", "mrr": 0}),  # no bill
    "openapi/customer.subscription.resumed.json": (
        "cus_QXg1o8vcGmoR32",
        # API 2025-03-31 and later: the period is on the items
        {"status": "active", "current_period_end": "2000-12-08T15:02:53+00:00"},
    ),
    "stripe-ruby-mock/charge.dispute.created.json": (
        "ch_000000000000000000000000",
        {"dispute_id": "dp_000000000000000000000000", "amount_formatted": "$1.00", "reason": "fraudulent",
         "status": "warning_needs_response", "evidence_due_by": "2022-04-04T23:59:59+00:00"},
    ),
    "stripe-ruby-mock/charge.dispute.closed.json": ("ch_00000000000000", {"status": "won", "amount": 1000}),
    "stripe-ruby-mock/quote.finalized.json": (
        "cus_00000000000000",
        {"quote_id": "qt_000000000000000000000000", "quote_number": "QT-013268C5-0001-1", "status": "open",
         "amount_formatted": "$150.00"},
    ),
    "stripe-ruby-mock/quote.accepted.json": (
        "cus_00000000000000",
        {"status": "accepted", "subscription_id": "sub_000000000000000000000000"},
    ),
    "stripe-ruby-mock/quote.canceled.json": ("cus_00000000000000", {"status": "canceled"}),
    "pay/charge.refunded.json": (
        "cus_0dUMWLtzCTagWs",
        {"amount": 500, "amount_formatted": "$5.00", "charge_amount_formatted": "$15.00", "refunded": False},
    ),
    "pay/customer.subscription.updated.json": (
        "cus_00000000000000",
        {"plan_changed": True, "previous_plan_name": "Old plan", "plan_id": "FFBEGINNER_00000000000000",
         "plan_amount": 300, "status": "canceled", "mrr": 0},
    ),
}  # fmt: skip

# fixture → why it can't be processed: its type isn't supported, or its object names neither an email nor a
# customer
NOT_PROCESSABLE = {
    "dj-stripe/account.updated.connect_standard.json": "unsupported",
    "openapi/event.plan.created.json": "unsupported",
    "pay/account.updated.json": "unsupported",
    "pay/charge.updated.json": "unsupported",
    "stripe-ruby-mock/charge.succeeded.json": "unsupported",
    "stripe-ruby-mock/checkout.session.completed.setup_mode.json": "no email",
    "stripe-ruby-mock/charge.refunded.json": "no email",  # a guest's charge: no customer, no email
}

# Bare objects, not events: their shapes are checked by wrapping them as the event Stripe would send.
# object → (type, email, customer)
BARE_OBJECTS = {
    "openapi/object.customer.json": ("customer.created", "", "cus_QXg1o8vcGmoR32"),
    "openapi/object.checkout.session.json": ("checkout.session.completed", "example@example.com", ""),
    "openapi/object.invoice.json": ("invoice.paid", "", "cus_QXg1o8vcGmoR32"),
    "openapi/object.subscription.json": ("customer.subscription.created", "", "cus_QXg1o8vcGmoR32"),
    "openapi/object.dispute.json": ("charge.dispute.created", "", "ch_1PgafuB7WZ01zgkWXYmPNZs8"),
    "openapi/object.quote.json": ("quote.finalized", "", "cus_QXg1o8vcGmoR32"),
    "openapi/object.charge.json": ("charge.refunded", "", ""),
}


def test_every_fixture_is_classified():
    on_disk = {str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*.json")}
    assert on_disk == set(EXTRACTED) | set(BY_CUSTOMER) | set(NOT_PROCESSABLE) | set(BARE_OBJECTS)


def test_every_supported_type_has_a_fixture():
    types = {fixture_json(name)["type"] for name in [*EXTRACTED, *BY_CUSTOMER]}
    assert types == set(SUPPORTED_EVENTS)


@pytest.mark.parametrize("name", sorted(BY_CUSTOMER))
def test_object_without_email_is_matched_by_its_customer(name):
    payload = fixture_json(name)
    customer, properties = BY_CUSTOMER[name]
    spec = SUPPORTED_EVENTS[payload["type"]]
    assert spec.email(payload) == "" and spec.customer(payload) == customer
    extracted = spec.extract(payload)
    assert extracted.email == "" and customer in {extracted.customer_id, extracted.charge_id}
    for key, value in properties.items():
        assert extracted.properties[key] == value, key


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
        assert spec is not None and spec.email(payload) == "" and spec.customer(payload) == ""


@pytest.mark.parametrize("name", sorted(BARE_OBJECTS))
def test_newest_object_shapes(name):
    event_type, email, customer = BARE_OBJECTS[name]
    payload = {"id": "evt_x", "type": event_type, "data": {"object": fixture_json(name)}}
    assert SUPPORTED_EVENTS[event_type].email(payload) == email
    assert SUPPORTED_EVENTS[event_type].customer(payload) == customer


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
