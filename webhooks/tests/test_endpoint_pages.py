"""Settings → Stripe: endpoints, the signing secret, event settings, enable/disable, delete, test events."""

import html
import re

import pytest
from django.test import Client
from django.urls import reverse

from conftest import SECRET
from contacts.models import Contact
from loops.models import Event, LoopRun
from loopsync.celery import app as celery_app
from webhooks.models import Delivery, Endpoint, EventSetting
from webhooks.stripe_events import SUPPORTED_EVENTS

pytestmark = pytest.mark.django_db


def settings_data(endpoint, **changes):
    data = {}
    for s in endpoint.event_settings.all():
        key = s.event_type.replace(".", "_")
        if s.enabled:
            data[f"{key}_enabled"] = "on"
        data[f"{key}_trigger"] = s.trigger_event_name
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_list_and_add(logged_in, team):
    assert "No endpoint yet" in logged_in.get(reverse("webhook-settings:list")).content.decode()
    response = logged_in.post(reverse("webhook-settings:new"), {"name": "Main account"})
    endpoint = Endpoint.objects.get(team=team)
    assert response["Location"] == reverse("webhook-settings:detail", args=[endpoint.pk])
    assert endpoint.name == "Main account" and endpoint.signing_secret == ""
    assert endpoint.event_settings.filter(enabled=True).count() == len(SUPPORTED_EVENTS)
    assert "Main account" in logged_in.get(reverse("webhook-settings:list")).content.decode()


def test_detail_shows_the_url_for_stripe_and_only_a_hint_of_the_secret(logged_in, endpoint, settings):
    settings.SITE_URL = "https://loopsync.example.com"  # not the request's host: behind a proxy it is not Stripe's
    body = logged_in.get(reverse("webhook-settings:detail", args=[endpoint.pk])).content.decode()
    assert f"https://loopsync.example.com/webhooks/stripe/{endpoint.uuid}/" in body
    assert endpoint.secret_hint in body and SECRET not in body
    assert 'value="failedPayment"' in body and '<datalist id="trigger-names">' in body


def test_save_a_new_secret_and_it_is_never_shown_again(logged_in, endpoint):
    response = logged_in.post(
        reverse("webhook-settings:secret", args=[endpoint.pk]), {"secret": "whsec_brand_new_9876"}
    )
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.signing_secret == "whsec_brand_new_9876"
    body = logged_in.get(reverse("webhook-settings:detail", args=[endpoint.pk])).content.decode()
    assert "whsec_…9876" in body and "whsec_brand_new_9876" not in body


def test_a_bad_secret_is_refused_with_the_form_kept_and_nothing_saved(logged_in, endpoint):
    response = logged_in.post(reverse("webhook-settings:secret", args=[endpoint.pk]), {"secret": "sk_live_oops"})
    assert response.status_code == 400 and "starts with whsec_" in response.content.decode()
    assert "sk_live_oops" not in response.content.decode()
    endpoint.refresh_from_db()
    assert endpoint.signing_secret == SECRET


def test_save_event_settings(logged_in, endpoint):
    data = settings_data(endpoint, invoice_paid_trigger="successfulPayment", invoice_upcoming_enabled=None)
    response = logged_in.post(reverse("webhook-settings:events", args=[endpoint.pk]), data)
    assert response.status_code == 302 and response["Location"].endswith("#events")
    page = logged_in.get(response["Location"]).content.decode()
    assert "Event settings saved." in page[page.index('id="events"') :]  # where the browser lands
    settings = {s.event_type: (s.enabled, s.trigger_event_name) for s in endpoint.event_settings.all()}
    assert settings["invoice.paid"] == (True, "successfulPayment")
    assert settings["invoice.upcoming"] == (False, "")
    assert settings["invoice.payment_failed"] == (True, "failedPayment")


def test_a_bad_trigger_name_saves_nothing(logged_in, endpoint):
    data = settings_data(endpoint, invoice_paid_trigger="paid!", customer_created_trigger="newStripeCustomer")
    response = logged_in.post(reverse("webhook-settings:events", args=[endpoint.pk]), data)
    body = response.content.decode()
    assert response.status_code == 400 and "Nothing was saved" in body and 'value="paid!"' in body
    assert EventSetting.objects.get(endpoint=endpoint, event_type="customer.created").trigger_event_name == ""


def test_disable_enable_and_delete(logged_in, endpoint):
    for _ in range(2):  # a double submit of "disable" leaves it disabled
        logged_in.post(reverse("webhook-settings:toggle", args=[endpoint.pk]), {"enabled": "no"})
    endpoint.refresh_from_db()
    assert not endpoint.enabled
    logged_in.post(reverse("webhook-settings:toggle", args=[endpoint.pk]), {"enabled": "yes"})
    endpoint.refresh_from_db()
    assert endpoint.enabled
    assert "Delete endpoint" in logged_in.get(reverse("webhook-settings:delete", args=[endpoint.pk])).content.decode()
    logged_in.post(reverse("webhook-settings:delete", args=[endpoint.pk]))
    assert not Endpoint.objects.filter(pk=endpoint.pk).exists()


def test_send_test_event_goes_through_the_real_receive_path_and_shows_what_happened(
    logged_in, user, endpoint, make_loop, django_capture_on_commit_callbacks
):
    make_loop(endpoint.team)
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = logged_in.post(reverse("webhook-settings:test", args=[endpoint.pk, "invoice.payment_failed"]))
    finally:
        celery_app.conf.task_always_eager = eager
    delivery = Delivery.objects.get()
    assert delivery.status == "processed" and delivery.stripe_event_id.startswith("evt_test_")
    assert Contact.objects.filter(team=endpoint.team, email=user.email).exists()
    event = Event.objects.get(name="failedPayment")
    assert LoopRun.objects.filter(event=event).exists()
    page = logged_in.get(response["Location"]).content.decode()
    assert "Contact synced" in page and user.email in page and "Event fired" in page
    assert "Stripe - Payment Failed" in page


@pytest.mark.parametrize("event_type", sorted(SUPPORTED_EVENTS))
def test_a_test_event_never_touches_a_real_customer(
    logged_in, user, endpoint, django_capture_on_commit_callbacks, event_type
):
    contact = Contact.objects.create(team=endpoint.team, email=user.email.upper(), stripe_customer_id="cus_RealOne")
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            logged_in.post(reverse("webhook-settings:test", args=[endpoint.pk, event_type]))
    finally:
        celery_app.conf.task_always_eager = eager
    assert Delivery.objects.get().status == "processed"
    contact.refresh_from_db()
    assert contact.stripe_customer_id == "cus_RealOne" and contact.subscribed and contact.properties == {}
    # The test event synced a test contact of its own: test data never changes live data.
    test_contact = Contact.objects.get(team=endpoint.team, livemode=False)
    assert test_contact.email.lower() == user.email.lower() and test_contact.stripe_customer_id != "cus_RealOne"
    if event_type.startswith("customer.subscription."):  # the sample is a "Pro" plan at $19.00 a month
        assert test_contact.properties["planName"] == "Pro" and test_contact.properties["planAmount"] == 19.0
    if event_type == "customer.deleted":
        assert not test_contact.subscribed and test_contact.unsubscribed_by == "stripe"


def test_test_result_polls_while_no_worker_has_it(logged_in, endpoint):
    logged_in.post(reverse("webhook-settings:test", args=[endpoint.pk, "customer.created"]))
    delivery = Delivery.objects.get()
    assert delivery.status == "received"  # its wake-up waits for a commit that never comes in this test
    url = reverse("webhook-settings:test-result", args=[endpoint.pk, delivery.pk])
    partial = logged_in.get(url).content.decode()
    assert 'hx-trigger="load delay:1s"' in partial and "?n=1" in partial and 'id="test-result"' not in partial
    last = logged_in.get(url, {"n": "60"}).content.decode()
    assert "hx-get" not in last and "is a worker running?" in last


def test_test_event_needs_a_secret(logged_in, team, make_endpoint):
    endpoint = make_endpoint(team, secret="")
    response = logged_in.post(reverse("webhook-settings:test", args=[endpoint.pk, "invoice.paid"]), follow=True)
    assert "Save the signing secret first" in response.content.decode()
    assert not Delivery.objects.exists()


@pytest.mark.parametrize(
    ("name", "method", "extra"),
    [
        ("detail", "get", []),
        ("secret", "post", []),
        ("events", "post", []),
        ("toggle", "post", []),
        ("delete", "get", []),
        ("delete", "post", []),
        ("test", "post", ["invoice.paid"]),
    ],
)
def test_another_teams_user_gets_404(client, outsider, endpoint, name, method, extra):
    client.force_login(outsider)
    response = getattr(client, method)(reverse(f"webhook-settings:{name}", args=[endpoint.pk, *extra]))
    assert response.status_code == 404
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.signing_secret == SECRET and not Delivery.objects.exists()


def test_another_teams_user_cannot_read_a_test_result(client, outsider, user, endpoint):
    owner = Client()
    owner.force_login(user)
    owner.post(reverse("webhook-settings:test", args=[endpoint.pk, "invoice.paid"]))
    client.force_login(outsider)
    url = reverse("webhook-settings:test-result", args=[endpoint.pk, Delivery.objects.get().pk])
    assert client.get(url).status_code == 404


def test_pages_need_login_and_forms_need_csrf(client, user, endpoint):
    assert client.get(reverse("webhook-settings:list")).status_code == 302
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(reverse("webhook-settings:toggle", args=[endpoint.pk])).status_code == 403
    assert (
        strict.post(reverse("webhook-settings:secret", args=[endpoint.pk]), {"secret": "whsec_x_123456789"}).status_code
        == 403
    )


def test_send_test_event_keeps_the_event_settings_typed_but_not_saved(logged_in, endpoint):
    page = logged_in.get(reverse("webhook-settings:detail", args=[endpoint.pk])).content.decode()
    fields = dict(re.findall(r'name="(invoice_[a-z_]+_(?:trigger|additional))"[^>]*?(?:value="([^"]*)")?', page))
    edited = {**fields, "invoice_payment_failed_trigger": "paymentFailedEdited"}
    edited.update({name.replace("_trigger", "_enabled"): "on" for name in fields if name.endswith("_trigger")})
    response = logged_in.post(reverse("webhook-settings:test", args=[endpoint.pk, "invoice.payment_failed"]), edited)
    assert response.status_code == 302  # back to the page: a reload of it sends nothing again
    text = html.unescape(logged_in.get(response["Location"]).content.decode())
    assert 'value="paymentFailedEdited"' in text and "Your changes to the event settings are not saved yet" in text
    again = logged_in.get(response["Location"]).content.decode()
    assert 'value="paymentFailedEdited"' not in again  # kept once, for the page it went back to
    setting = EventSetting.objects.get(endpoint=endpoint, event_type="invoice.payment_failed")
    assert setting.trigger_event_name == "failedPayment"  # as saved: the edit waits for "Save event settings"
    assert Delivery.objects.count() == 1  # the test was sent all the same
