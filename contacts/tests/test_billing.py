"""Stripe billing state on a contact: snapshots per Stripe object, kept in the order of their events, and the
typed properties derived from them."""

import pytest

from contacts.billing import BILLING_PROPERTIES, BillingUpdate, billing_merge, billing_properties, contact_billing_apply
from contacts.models import Contact
from webhooks.stripe_billing import plan_name, subscription_update


def sub(sub_id="sub_1", *, status="active", created=100, amount=1900, interval="month", count=1, quantity=1, **extra):
    price = {"id": f"price_{sub_id}", "nickname": None, "currency": "usd", "unit_amount": amount,
             "recurring": {"interval": interval, "interval_count": count, "usage_type": "licensed"}}  # fmt: skip
    obj = {"id": sub_id, "object": "subscription", "status": status, "created": created, "currency": "usd",
           "customer": "cus_1", "items": {"data": [{"price": price, "quantity": quantity}]}, **extra}  # fmt: skip
    return subscription_update(obj)


@pytest.mark.parametrize(
    ("amount", "interval", "count", "quantity", "mrr"),
    [
        (1900, "month", 1, 1, 19.0),
        (1900, "month", 3, 1, round(19 / 3, 4)),  # quarterly
        (24000, "year", 1, 2, 40.0),
        (500, "week", 1, 1, round(5 * 52 / 12, 4)),
        (100, "day", 1, 1, round(365 / 12, 4)),
    ],
)
def test_mrr_is_normalized_to_a_month_in_major_units_times_quantity(amount, interval, count, quantity, mrr):
    update = sub(amount=amount, interval=interval, count=count, quantity=quantity)
    assert update.values["mrr"] == mrr
    assert update.values["planAmount"] == amount / 100  # per interval, not multiplied by quantity


def test_mrr_sums_every_item_and_skips_metered_ones():
    metered = {
        "id": "price_m",
        "unit_amount": 5,
        "currency": "usd",
        "recurring": {"interval": "month", "usage_type": "metered"},
    }
    flat = {"id": "price_f", "unit_amount": 1000, "currency": "usd", "recurring": {"interval": "month"}}
    obj = {"id": "sub_1", "status": "active", "currency": "usd",
           "items": {"data": [{"price": flat, "quantity": 3}, {"price": metered, "quantity": 1}]}}  # fmt: skip
    assert subscription_update(obj).values["mrr"] == 30.0


def test_zero_decimal_currencies_stay_whole():
    price = {"id": "p", "unit_amount": 980, "recurring": {"interval": "month"}}
    obj = {"id": "sub_1", "status": "active", "currency": "jpy", "items": {"data": [{"price": price}]}}
    assert subscription_update(obj).values["planAmount"] == 980


def test_plan_name_is_the_nickname_else_the_products_name_else_the_price_id():
    assert plan_name({"id": "price_1", "nickname": "Pro", "product": {"id": "prod", "name": "Widget"}}) == "Pro"
    assert plan_name({"id": "price_1", "nickname": None, "product": {"id": "prod", "name": "Widget"}}) == "Widget"
    assert plan_name({"id": "price_1", "nickname": None, "product": "prod_1"}) == "price_1"


def test_the_newest_running_subscription_describes_the_contact_and_mrr_sums_the_running_ones():
    state: dict = {}
    billing_merge(state, sub("sub_old", created=100, amount=1000), at=10)
    billing_merge(state, sub("sub_new", created=200, amount=5000, status="trialing"), at=11)
    billing_merge(state, sub("sub_gone", created=300, amount=9900, status="canceled"), at=12)
    props = billing_properties(state)
    assert (props["planId"], props["subscriptionStatus"]) == ("price_sub_new", "trialing")
    assert props["mrr"] == 10.0  # a trial is not revenue yet, as in Stripe's MRR
    billing_merge(state, sub("sub_new", created=200, status="canceled"), at=13)
    billing_merge(state, sub("sub_old", created=100, status="canceled"), at=14)
    props = billing_properties(state)
    assert props["subscriptionStatus"] == "canceled" and props["mrr"] == 0
    assert props["planId"] == "price_sub_gone"  # no running one: the newest of all


def test_an_older_snapshot_of_an_object_changes_nothing():
    state: dict = {}
    assert billing_merge(state, sub(status="past_due"), at=200)
    assert not billing_merge(state, sub(status="active"), at=100)
    assert billing_properties(state)["subscriptionStatus"] == "past_due"
    assert billing_merge(state, sub(status="active"), at=200)  # the same second: applied (Stripe's order)


def test_each_paid_invoice_counts_once_and_old_ones_fold_into_a_sum():
    state: dict = {}
    for n in range(510):
        paid_at = f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}+00:00"
        billing_merge(state, BillingUpdate("invoice_paid", f"in_{n}", {"amount": 1.5, "paidAt": paid_at}), at=n)
    assert not billing_merge(state, BillingUpdate("invoice_paid", "in_509", {"amount": 1.5}), at=999)
    assert len(state["paid"]) == 500
    props = billing_properties(state)
    assert props["ltv"] == 765.0 and props["lastPaymentAt"] == "2026-01-01T00:08:29+00:00"


def test_every_billing_property_is_typed():
    assert set(BILLING_PROPERTIES.values()) <= {"string", "number", "boolean", "date"}
    assert len(BILLING_PROPERTIES) == 15


@pytest.mark.django_db
def test_applying_keeps_the_teams_own_properties_and_drops_what_is_no_longer_known(team):
    contact = Contact.objects.create(team=team, email="ada@example.com", properties={"plan": "mine"})
    contact_billing_apply(contact=contact, updates=[sub(trial_end=1_800_000_000)], at=10)
    contact.refresh_from_db()
    assert contact.properties["plan"] == "mine" and contact.properties["trialEnd"] == "2027-01-15T08:00:00+00:00"
    contact_billing_apply(contact=contact, updates=[sub()], at=11)  # the trial is over
    contact.refresh_from_db()
    assert "trialEnd" not in contact.properties and contact.properties["plan"] == "mine"


# --- the API ---------------------------------------------------------------------------------------


@pytest.fixture
def api(team):
    from rest_framework.test import APIClient

    from api.services import api_key_create

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(team=team, name='t').key}")
    return client


def test_contacts_find_returns_billing_properties_at_the_top_level(api, team):
    contact = Contact.objects.create(team=team, email="ada@example.com", stripe_customer_id="cus_1")
    contact_billing_apply(contact=contact, updates=[sub(amount=4900)], at=10)
    found = api.get("/api/v1/contacts/find", {"email": "ada@example.com"}).json()[0]
    assert (found["planAmount"], found["mrr"], found["subscriptionStatus"]) == (49.0, 49.0, "active")


def test_a_billing_property_keeps_its_type_in_the_api(api, team):
    Contact.objects.create(team=team, email="ada@example.com")
    response = api.put("/api/v1/contacts/update", {"email": "ada@example.com", "mrr": "lots"}, format="json")
    assert response.status_code == 400 and "number" in response.content.decode()
    response = api.post("/api/v1/contacts/properties", {"name": "planName", "type": "number"}, format="json")
    assert (
        response.status_code == 409 and "built-in Stripe billing property, of type string" in response.json()["message"]
    )
    # With its own type it is accepted, as Loops' clients create planName, and nothing is declared twice.
    response = api.post("/api/v1/contacts/properties", {"name": "planName", "type": "string"}, format="json")
    assert response.status_code == 200 and not team.contact_properties.exists()


def test_plans_era_items_count_by_their_plans_amount_and_quantity():
    from conftest import fixture_json

    subscription = fixture_json("stripe-ruby-mock/customer.subscription.trial_will_end.json")["data"]["object"]
    update = subscription_update({**subscription, "status": "active"})  # items: 1 × $1.00 and 5 × $2.00
    assert (update.values["mrr"], update.values["planAmount"], update.values["planInterval"]) == (11.0, 1.0, "month")
