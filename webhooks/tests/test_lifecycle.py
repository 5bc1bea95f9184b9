"""The Stripe customer lifecycle through the receive path and the drain: contacts found by their Stripe
customer, billing state kept in order, endpoint options, and the events each type fires."""

import copy
import json

import pytest
from django.urls import reverse
from django.utils import timezone

from conftest import fixture_json
from contacts.models import Contact, ListMembership, MailingList
from loops.models import Event
from loopsync.celery import app as celery_app
from tests.fake_stripe import customer as fake_customer
from webhooks.models import Delivery, Endpoint
from webhooks.services import processing
from webhooks.stripe_events import SUPPORTED_EVENTS

pytestmark = pytest.mark.django_db

SUB_CREATED = "stripe-ruby-mock/customer.subscription.created.json"
SUB_UPDATED_PLAN = "pay/customer.subscription.updated.json"
CUSTOMER = "cus_00000000000000"


def live(name_or_payload, **changes) -> dict:
    payload = copy.deepcopy(fixture_json(name_or_payload) if isinstance(name_or_payload, str) else name_or_payload)
    payload["livemode"] = True
    payload.update(changes)
    return payload


def deliver(post_webhook, endpoint, payload: dict) -> Delivery:
    """Post a signed event, drain, then run what the drain handed over (a Stripe look-up), as a worker would."""
    response = post_webhook(endpoint, json.dumps(payload))
    assert response.status_code == 200, response.content
    processing.deliveries_drain()
    for handed_over in Delivery.objects.filter(status="processing", next_attempt_at__lte=timezone.now()):
        processing.delivery_process(delivery_id=handed_over.id)
    return Delivery.objects.get(endpoint=endpoint, stripe_event_id=payload["id"])


@pytest.fixture
def known(team):
    """The contact that Stripe's customer cus_00000000000000 is."""
    return Contact.objects.create(team=team, email="ada@example.com", stripe_customer_id=CUSTOMER)


def test_a_subscription_finds_its_contact_by_customer_id_and_sets_billing_state(
    team, make_endpoint, post_webhook, known
):
    endpoint = make_endpoint(team, triggers={"customer.subscription.created": "subscriptionCreated"})
    delivery = deliver(post_webhook, endpoint, live(SUB_CREATED))
    assert delivery.status == "processed"
    known.refresh_from_db()
    assert {k: known.properties[k] for k in ("subscriptionStatus", "planId", "planInterval", "planAmount", "mrr")} == {
        "subscriptionStatus": "active",
        "planId": "price_000000000000000000000000",
        "planInterval": "month",
        "planAmount": 15.0,
        "mrr": 15.0,
    }
    assert known.properties["currency"] == "usd" and known.properties["cancelAtPeriodEnd"] is False
    assert known.properties["currentPeriodEnd"] == "2022-04-26T18:41:50+00:00"
    assert "trialEnd" not in known.properties  # no trial: the property is absent, not null
    event = Event.objects.get(contact=known)
    assert event.name == "subscriptionCreated" and event.properties["plan_amount_formatted"] == "$15.00"


def test_an_unknown_customer_is_ignored_with_its_reason_and_a_replay_after_an_import_processes_it(
    team, make_endpoint, post_webhook
):
    endpoint = make_endpoint(team, triggers={"customer.subscription.created": "subscriptionCreated"})
    delivery = deliver(post_webhook, endpoint, live(SUB_CREATED))
    assert (delivery.status, delivery.ignored_reason) == ("ignored", "customer_unknown")
    assert "Import your customers" in delivery.last_error and not Contact.objects.exists()
    Contact.objects.create(team=team, email="ada@example.com", stripe_customer_id=CUSTOMER)  # as an import would
    assert processing.delivery_replay(delivery=delivery) == "received"
    processing.deliveries_drain()
    delivery.refresh_from_db()
    assert delivery.status == "processed" and Event.objects.get().name == "subscriptionCreated"


def test_an_unknown_customer_is_asked_of_stripe_when_the_endpoint_has_a_key(
    team, make_endpoint, post_webhook, fake_stripe
):
    endpoint = make_endpoint(team, triggers={"quote.accepted": "quoteAccepted"})
    Endpoint.objects.filter(id=endpoint.id).update(api_key="rk_live_" + "k" * 24)
    fake_stripe.keys["rk_live_" + "k" * 24] = "ok"
    fake_stripe.objects["customers"].append(
        fake_customer(0, email="grace@example.com", name="Grace Hopper") | {"id": CUSTOMER}
    )
    delivery = deliver(post_webhook, endpoint, live("stripe-ruby-mock/quote.accepted.json"))
    assert delivery.status == "processed"
    contact = Contact.objects.get(team=team)
    assert (contact.email, contact.first_name, contact.stripe_customer_id) == ("grace@example.com", "Grace", CUSTOMER)
    assert Event.objects.get().properties["quote_id"] == "qt_000000000000000000000000"
    assert fake_stripe.requests_to(f"/v1/customers/{CUSTOMER}")


def test_the_shared_drain_never_calls_stripe_and_hands_the_look_up_over(team, make_endpoint, post_webhook, fake_stripe):
    endpoint = make_endpoint(team)
    Endpoint.objects.filter(id=endpoint.id).update(api_key="rk_live_" + "k" * 24)
    fake_stripe.keys["rk_live_" + "k" * 24] = "ok"
    post_webhook(endpoint, json.dumps(live("stripe-ruby-mock/quote.finalized.json")))
    processing.deliveries_drain()
    delivery = Delivery.objects.get()
    assert delivery.status == "processing" and delivery.next_attempt_at <= timezone.now()  # for process_delivery
    assert fake_stripe.requests == []
    assert processing.deliveries_sweep() == 1  # a lost hand-over is found by the sweep


def test_stripe_down_during_the_look_up_releases_the_delivery_then_keeps_it_as_unknown(
    team, make_endpoint, post_webhook, fake_stripe
):
    endpoint = make_endpoint(team)
    Endpoint.objects.filter(id=endpoint.id).update(api_key="rk_live_" + "k" * 24)
    fake_stripe.keys["rk_live_" + "k" * 24] = "ok"
    fake_stripe.fail_next(f"/v1/customers/{CUSTOMER}", 500, 500, 500)  # the library's 2 retries, then gives up
    delivery = deliver(post_webhook, endpoint, live("stripe-ruby-mock/quote.finalized.json"))
    assert delivery.status == "received" and delivery.next_attempt_at is not None
    assert "Looking up the Stripe customer" in delivery.last_error
    Delivery.objects.filter(id=delivery.id).update(status="processing", attempts=8, next_attempt_at=timezone.now())
    fake_stripe.fail_next(f"/v1/customers/{CUSTOMER}", 500, 500, 500)
    processing.delivery_process(delivery_id=delivery.id)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.ignored_reason) == ("ignored", "customer_unknown")  # for an import to replay
    assert "Stripe did not answer after 9 attempts" in delivery.last_error


def test_a_dispute_is_matched_through_its_charge_with_a_key(team, make_endpoint, post_webhook, fake_stripe, known):
    endpoint = make_endpoint(team, triggers={"charge.dispute.created": "disputeCreated"})
    Endpoint.objects.filter(id=endpoint.id).update(api_key="rk_live_" + "k" * 24)
    fake_stripe.keys["rk_live_" + "k" * 24] = "ok"
    fake_stripe.objects["charges"].append(
        {"id": "ch_000000000000000000000000", "object": "charge", "customer": CUSTOMER}
    )
    delivery = deliver(post_webhook, endpoint, live("stripe-ruby-mock/charge.dispute.created.json"))
    assert delivery.status == "processed"
    assert Event.objects.get(contact=known).properties["reason"] == "fraudulent"


def test_billing_state_from_an_older_event_never_overwrites_newer_state(team, make_endpoint, post_webhook, known):
    endpoint = make_endpoint(team)
    newer = live(SUB_CREATED, id="evt_newer", created=2_000_000_000)
    newer["data"]["object"]["status"] = "past_due"
    older = live(SUB_CREATED, id="evt_older", created=1_900_000_000)  # delivered late by Stripe's retries
    deliver(post_webhook, endpoint, newer)
    assert deliver(post_webhook, endpoint, older).status == "processed"
    known.refresh_from_db()
    assert known.properties["subscriptionStatus"] == "past_due"


def test_a_canceled_subscription_leaves_status_canceled_and_no_mrr(team, make_endpoint, post_webhook, known):
    endpoint = make_endpoint(team, triggers={"customer.subscription.deleted": "subscriptionCanceled"})
    deliver(post_webhook, endpoint, live(SUB_CREATED, id="evt_created", created=1_648_320_110))
    deleted = live("stripe-ruby-mock/customer.subscription.deleted.json", created=1_648_400_000)
    deleted["data"]["object"]["id"] = "sub_000000000000000000000000"
    deliver(post_webhook, endpoint, deleted)
    known.refresh_from_db()
    assert known.properties["subscriptionStatus"] == "canceled" and known.properties["mrr"] == 0
    assert known.properties["canceledAt"] == "2022-03-26T18:41:37+00:00"
    assert Event.objects.get().name == "subscriptionCanceled"


def test_a_second_subscription_describes_the_contact_and_mrr_sums_both(team, make_endpoint, post_webhook, known):
    endpoint = make_endpoint(team)
    deliver(post_webhook, endpoint, live(SUB_CREATED, id="evt_a"))  # $15 a month, created 1648320110
    second = live(SUB_CREATED, id="evt_b", created=1_700_000_000)
    obj = second["data"]["object"]
    obj.update(id="sub_second", created=1_700_000_000)
    obj["items"]["data"][0]["price"].update(id="price_yearly", nickname="Team", unit_amount=24000,
                                            recurring={"interval": "year", "interval_count": 1})  # fmt: skip
    obj["items"]["data"][0]["quantity"] = 2
    deliver(post_webhook, endpoint, second)
    known.refresh_from_db()
    props = known.properties
    assert (props["planName"], props["planInterval"], props["planAmount"]) == ("Team", "year", 240.0)
    assert props["mrr"] == 15.0 + 2 * 240 / 12


def test_a_plan_change_fires_planchanged_and_a_renewal_does_not(team, make_endpoint, post_webhook, known):
    endpoint = make_endpoint(team, triggers={"customer.subscription.updated": "planChanged"})
    changed = live(SUB_UPDATED_PLAN, id="evt_plan")
    changed["data"]["object"]["status"] = "active"
    deliver(post_webhook, endpoint, changed)
    renewal = live("stripe-ruby-mock/customer.subscription.updated.json", id="evt_renewal")  # `schedule` changed
    assert deliver(post_webhook, endpoint, renewal).status == "processed"
    event = Event.objects.get()
    assert event.name == "planChanged" and event.properties["previous_plan_name"] == "Old plan"
    assert event.properties["plan_amount_formatted"] == "$3.00"


def test_an_additional_custom_event_fires_beside_the_first_once(team, make_endpoint, post_webhook, known):
    endpoint = make_endpoint(team, triggers={"customer.subscription.created": "subscriptionCreated"})
    endpoint.event_settings.filter(event_type="customer.subscription.created").update(additional_event_name="newPaid")
    payload = live(SUB_CREATED)
    deliver(post_webhook, endpoint, payload)
    post_webhook(endpoint, json.dumps(payload))  # Stripe's retry
    processing.deliveries_drain()
    assert sorted(Event.objects.values_list("name", flat=True)) == ["newPaid", "subscriptionCreated"]


def test_new_contacts_get_the_endpoints_user_group_and_list_and_existing_ones_keep_theirs(
    team, make_endpoint, post_webhook
):
    newsletter = MailingList.objects.create(team=team, name="Customers")
    endpoint = make_endpoint(team)
    Endpoint.objects.filter(id=endpoint.id).update(new_contact_user_group="stripe", new_contact_list=newsletter)
    old = Contact.objects.create(team=team, email="michael.smith@example.com", user_group="vip")
    deliver(post_webhook, endpoint, live("dj-stripe/customer.created.with_name.json"))
    deliver(post_webhook, endpoint, live("dj-stripe/customer.created.email_only.json"))
    jane = Contact.objects.get(email="jane.austen@example.com")
    old.refresh_from_db()
    assert jane.user_group == "stripe" and ListMembership.objects.filter(contact=jane, mailing_list=newsletter).exists()
    assert old.user_group == "vip" and not ListMembership.objects.filter(contact=old).exists()


@pytest.mark.parametrize(("choice", "exists"), [("unsubscribe", True), ("delete", False)])
def test_customer_deleted_unsubscribes_or_deletes_as_the_endpoint_says(
    team, make_endpoint, post_webhook, choice, exists
):
    endpoint = make_endpoint(team, triggers={"customer.deleted": "customerDeleted"})
    Endpoint.objects.filter(id=endpoint.id).update(customer_deleted=choice)
    contact = Contact.objects.create(
        team=team, email="Michael.Smith@example.com", stripe_customer_id="cus_6lsBvm5rJ0zyHc"
    )
    delivery = deliver(post_webhook, endpoint, live("dj-stripe/customer.deleted.email_only.json"))
    assert delivery.status == "processed"
    assert Contact.objects.filter(id=contact.id).exists() is exists
    if exists:
        contact.refresh_from_db()
        assert not contact.subscribed and contact.unsubscribed_by == "stripe"
        assert Event.objects.get().name == "customerDeleted"
    else:
        assert not Event.objects.exists()  # a deleted contact starts no loop


def test_customer_deleted_of_nobody_creates_no_contact(team, make_endpoint, post_webhook):
    endpoint = make_endpoint(team)
    delivery = deliver(post_webhook, endpoint, live("dj-stripe/customer.deleted.email_only.json"))
    assert (delivery.status, delivery.ignored_reason) == ("ignored", "customer_unknown")
    assert not Contact.objects.exists()


def test_ltv_counts_each_paid_invoice_once_and_a_failure_is_dated(team, make_endpoint, post_webhook):
    endpoint = make_endpoint(team)
    paid = live("pay/invoice.paid.json")
    deliver(post_webhook, endpoint, paid)
    again = live("pay/invoice.paid.json", id="evt_other_event_same_invoice")
    deliver(post_webhook, endpoint, again)
    failed = live("pay/invoice.payment_failed.json")
    failed["data"]["object"].update(customer_email="missouri@example.org")
    deliver(post_webhook, endpoint, failed)
    contact = Contact.objects.get(email="missouri@example.org")
    assert contact.properties["ltv"] == 245.12 and contact.properties["lastPaymentAt"] == "2025-04-18T14:26:03+00:00"
    assert contact.properties["lastPaymentFailedAt"] == "2025-04-23T18:46:02+00:00"


def test_delinquent_comes_from_the_customer(team, make_endpoint, post_webhook):
    endpoint = make_endpoint(team)
    payload = live("dj-stripe/customer.created.with_name.json")
    payload["data"]["object"]["delinquent"] = True
    deliver(post_webhook, endpoint, payload)
    assert Contact.objects.get().properties["delinquent"] is True


def test_an_object_with_neither_email_nor_customer_is_ignored_as_no_email(team, make_endpoint, post_webhook):
    endpoint = make_endpoint(team)
    payload = live("pay/charge.refunded.json")
    payload["data"]["object"]["customer"] = None
    response = post_webhook(endpoint, json.dumps(payload))
    assert response.json() == {"status": "ignored", "reason": "no_email"}


def test_every_supported_type_names_a_trigger_suggestion_and_a_label():
    for spec in SUPPORTED_EVENTS.values():
        assert spec.label and spec.description.endswith(".")
    assert {s.suggested_trigger for s in SUPPORTED_EVENTS.values()} >= {
        "trialEnding", "subscriptionCanceled", "paymentActionRequired", "planChanged"
    }  # fmt: skip


# --- what the pages say ----------------------------------------------------------------------------


def _send_test(logged_in, endpoint, event_type, capture):
    eager, celery_app.conf.task_always_eager = celery_app.conf.task_always_eager, True
    try:
        with capture(execute=True):
            response = logged_in.post(reverse("webhook-settings:test", args=[endpoint.pk, event_type]))
    finally:
        celery_app.conf.task_always_eager = eager
    return logged_in.get(response["Location"]).content.decode()


def test_the_test_result_shows_the_additional_event(logged_in, team, make_endpoint, django_capture_on_commit_callbacks):
    endpoint = make_endpoint(team, triggers={"customer.subscription.trial_will_end": "trialEnding"})
    endpoint.event_settings.filter(event_type="customer.subscription.trial_will_end").update(
        additional_event_name="trialEndingSalesAlert"
    )
    page = _send_test(logged_in, endpoint, "customer.subscription.trial_will_end", django_capture_on_commit_callbacks)
    assert "Event fired: " in page and "<code>trialEnding</code>" in page
    assert "Additional event fired: " in page and "<code>trialEndingSalesAlert</code>" in page


def test_the_test_result_says_a_deleted_customer_was_deleted(
    logged_in, team, make_endpoint, django_capture_on_commit_callbacks
):
    endpoint = make_endpoint(team, triggers={"customer.deleted": "customerDeleted"})
    Endpoint.objects.filter(id=endpoint.id).update(customer_deleted="delete")
    page = _send_test(logged_in, endpoint, "customer.deleted", django_capture_on_commit_callbacks)
    assert "Contact deleted, as this endpoint's options say" in page
    assert "No event fired: the contact was deleted" in page and "only syncs the contact" not in page


def test_the_test_result_says_an_unsubscribed_customer_was_unsubscribed(
    logged_in, team, make_endpoint, django_capture_on_commit_callbacks
):
    endpoint = make_endpoint(team)
    page = _send_test(logged_in, endpoint, "customer.deleted", django_capture_on_commit_callbacks)
    assert "Contact unsubscribed: " in page


def test_a_members_view_of_the_options_reads_them_without_forms(as_member, team, make_endpoint):
    newsletter = MailingList.objects.create(team=team, name="Customers")
    endpoint = make_endpoint(team)
    Endpoint.objects.filter(id=endpoint.id).update(new_contact_user_group="paying", new_contact_list=newsletter)
    page = as_member.get(reverse("webhook-settings:detail", args=[endpoint.pk])).content.decode()
    assert "<dd>paying</dd>" in page and "<dd>Customers</dd>" in page and "Unsubscribe the contact" in page
    assert reverse("webhook-settings:options", args=[endpoint.pk]) not in page


def test_options_refuse_another_teams_mailing_list_and_save_nothing(logged_in, team, other_team, make_endpoint):
    theirs = MailingList.objects.create(team=other_team, name="Theirs")
    endpoint = make_endpoint(team)
    url = reverse("webhook-settings:options", args=[endpoint.pk])
    response = logged_in.post(
        url, {"new_contact_user_group": "x", "new_contact_list": theirs.pk, "customer_deleted": "delete"}
    )
    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()
    endpoint.refresh_from_db()
    assert (endpoint.new_contact_user_group, endpoint.new_contact_list_id, endpoint.customer_deleted) == (
        "",
        None,
        "unsubscribe",
    )
    ours = MailingList.objects.create(team=team, name="Ours")
    response = logged_in.post(
        url, {"new_contact_user_group": " paying ", "new_contact_list": ours.pk, "customer_deleted": "delete"}
    )
    assert response.status_code == 302 and response["Location"].endswith("#options")
    endpoint.refresh_from_db()
    assert (endpoint.new_contact_user_group, endpoint.new_contact_list_id, endpoint.customer_deleted) == (
        "paying",
        ours.pk,
        "delete",
    )
    page = logged_in.get(response["Location"]).content.decode()
    section = page[page.index('id="options"') :]
    assert "Options saved." in section and "Options saved." not in page[: page.index('id="options"')]


def test_an_additional_event_equal_to_the_first_is_refused(logged_in, team, make_endpoint):
    endpoint = make_endpoint(team)
    data = {f"{s.event_type.replace('.', '_')}_enabled": "on" for s in endpoint.event_settings.all()}
    data |= {"invoice_paid_trigger": "paid", "invoice_paid_additional": "paid"}
    response = logged_in.post(reverse("webhook-settings:events", args=[endpoint.pk]), data)
    assert response.status_code == 400 and "must differ from the first one" in response.content.decode()
    assert not endpoint.event_settings.filter(trigger_event_name="paid").exists()


def test_contact_page_shows_billing_values_as_people_read_them(logged_in, team, known, make_endpoint, post_webhook):
    deliver(post_webhook, make_endpoint(team), live(SUB_CREATED))
    page = logged_in.get(reverse("contacts:detail", args=[known.pk])).content.decode()
    assert "<dd>15</dd>" in page and "<dd>No</dd>" in page and "Apr 26, 2022 18:41 UTC" in page
