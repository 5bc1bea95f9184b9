"""The webhook log: deliveries per endpoint, one delivery's payload, and Replay."""

import html
import json
import re
from urllib.parse import urljoin

import pytest
from django.test import Client
from django.urls import reverse

from conftest import fixture_text, livemode
from loops.models import Event
from tests.paging import log_fill
from webhooks.models import Delivery
from webhooks.services.processing import deliveries_drain


def processing_drain() -> None:
    deliveries_drain(budget_seconds=5)


pytestmark = pytest.mark.django_db


@pytest.fixture
def deliveries(endpoint, post_webhook):
    post_webhook(endpoint, fixture_text("pay/invoice.payment_failed.json"))
    post_webhook(endpoint, livemode(fixture_text("stripe-ruby-mock/charge.succeeded.json")))
    failed = Delivery.objects.get(event_type="invoice.payment_failed")
    Delivery.objects.filter(id=failed.id).update(status="failed", last_error="ValueError: something broke")
    return Delivery.objects.order_by("id")


def test_log_index_goes_to_the_only_endpoint(logged_in, endpoint):
    response = logged_in.get(reverse("webhook-log:index"))
    assert response["Location"] == reverse("webhook-log:endpoint", args=[endpoint.pk])


def test_log_lists_deliveries_with_status_reason_and_error(logged_in, endpoint, deliveries):
    body = logged_in.get(reverse("webhook-log:endpoint", args=[endpoint.pk])).content.decode()
    assert "invoice.payment_failed" in body and "something broke" in body
    assert "charge.succeeded" in body and "Event type not supported" in body
    only_failed = logged_in.get(reverse("webhook-log:endpoint", args=[endpoint.pk]), {"status": "failed"})
    assert "charge.succeeded" not in only_failed.content.decode()


def test_delivery_page_pretty_prints_the_payload_escaped(logged_in, endpoint, post_webhook):
    body = json.loads(fixture_text("pay/invoice.paid.json"))
    body["data"]["object"]["customer_name"] = "<script>alert(1)</script>"
    post_webhook(endpoint, json.dumps(body))
    page = logged_in.get(reverse("webhook-log:delivery", args=[Delivery.objects.get().pk])).content.decode()
    assert "&quot;customer_email&quot;: &quot;missouri@example.org&quot;" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


def test_replay_sends_a_failed_delivery_through_again(logged_in, endpoint, deliveries):
    failed = deliveries.get(status="failed")
    response = logged_in.post(reverse("webhook-log:replay", args=[failed.pk]))
    assert response.status_code == 302
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) in {("received", 0), ("processed", 1)}


def test_replay_of_an_ignored_unsupported_type_stays_ignored_and_says_why(logged_in, endpoint, deliveries):
    ignored = deliveries.get(status="ignored")
    response = logged_in.post(reverse("webhook-log:replay", args=[ignored.pk]), follow=True)
    assert "Not replayed: Event type not supported" in response.content.decode()
    ignored.refresh_from_db()
    assert ignored.status == "ignored"


def test_replay_of_a_type_ticked_since_processes_it(logged_in, team, make_endpoint, post_webhook):
    endpoint = make_endpoint(team, disabled={"invoice.paid"})
    post_webhook(endpoint, livemode(fixture_text("pay/invoice.paid.json")))
    delivery = Delivery.objects.get()
    assert delivery.ignored_reason == "type_disabled"
    endpoint.event_settings.filter(event_type="invoice.paid").update(enabled=True)
    logged_in.post(reverse("webhook-log:replay", args=[delivery.pk]))
    delivery.refresh_from_db()
    assert delivery.status in {"received", "processed"} and delivery.ignored_reason == ""


@pytest.mark.parametrize("name", ["webhook-log:endpoint", "webhook-log:delivery", "webhook-log:replay"])
def test_another_teams_user_gets_404(client, outsider, endpoint, deliveries, name):
    client.force_login(outsider)
    pk = endpoint.pk if name == "webhook-log:endpoint" else deliveries.first().pk
    method = client.post if name.endswith("replay") else client.get
    assert method(reverse(name, args=[pk])).status_code == 404


def test_replay_needs_csrf(user, deliveries):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(reverse("webhook-log:replay", args=[deliveries.first().pk])).status_code == 403


# Pagination: the pager's links as rendered, followed as a browser would follow them.
DELIVERY_ROW = re.compile(
    r'<a href="/events/webhooks/deliveries/(\d+)/"><code>[^<]*</code></a>[^<]*'
    r'(?:<span class="badge-test"[^>]*>[^<]*</span>)?'
    r'\s*</td>\s*<td><span class="status status-(\w+)">'
)


def _pager_link(body: str, label: str) -> str | None:
    found = re.search(rf'<nav class="pager".*?<a href="([^"]*)"[^>]*>{label}</a>', body, re.S)
    return html.unescape(found[1]) if found else None


def test_older_links_walk_a_status_filtered_log_to_the_last_page_once_each(logged_in, endpoint):
    expected = log_fill(endpoint=endpoint)
    url = "http://testserver" + reverse("webhook-log:endpoint", args=[endpoint.pk]) + "?status=failed"
    pages = []
    while True:
        body = logged_in.get(url).content.decode()
        assert '<option value="failed" selected>' in body  # the filter shows on every page
        rows = DELIVERY_ROW.findall(body)
        assert {status for _, status in rows} == {"failed"}
        pages.append([int(pk) for pk, _ in rows])
        older = _pager_link(body, "Older")
        if older is None:
            break
        assert older.startswith("?") and not older.startswith("??") and "status=failed" in older
        url = urljoin(url, older)
    assert [len(rows) for rows in pages] == [50, 50, 30]
    assert pages[1] == expected[50:100] and pages[2] == expected[100:]
    assert sum(pages, []) == expected
    assert "No older ones." in body
    newer = _pager_link(body, "Newer")
    assert newer.startswith("?") and not newer.startswith("??") and "status=failed" in newer
    back = logged_in.get(urljoin(url, newer)).content.decode()
    assert [int(pk) for pk, _ in DELIVERY_ROW.findall(back)] == pages[1]


@pytest.mark.parametrize("params", [{"older": "abc"}, {"newer": "\x00"}, {"older": "MjAyNi0xMS0wMnwx"}, {"page": "3"}])
def test_a_cursor_no_link_could_have_made_shows_the_newest_page(logged_in, endpoint, params):
    expected = log_fill(endpoint=endpoint)
    response = logged_in.get(reverse("webhook-log:endpoint", args=[endpoint.pk]), {"status": "failed", **params})
    assert response.status_code == 200
    assert [int(pk) for pk, _ in DELIVERY_ROW.findall(response.content.decode())] == expected[:50]


def test_the_log_marks_test_mode_and_test_events_and_offers_no_replay_for_the_other_mode(
    logged_in, endpoint, post_webhook
):
    post_webhook(endpoint, fixture_text("dj-stripe/customer.created.with_name.json"))  # test mode: ignored
    listing = logged_in.get(reverse("webhook-log:endpoint", args=[endpoint.pk])).content.decode()
    assert ">Test mode</span>" in listing
    delivery = Delivery.objects.get()
    page = logged_in.get(reverse("webhook-log:delivery", args=[delivery.pk])).content.decode()
    assert "A test-mode event on a live-mode endpoint" in page and ">Replay</button>" not in page


def test_the_log_across_endpoints_searches_by_event_id_email_and_type_and_replays_what_it_shows(
    logged_in, team, endpoint, make_endpoint, post_webhook, outsider
):
    second = make_endpoint(team, name="Second", secret="whsec_second")
    post_webhook(endpoint, fixture_text("pay/invoice.payment_failed.json"))
    post_webhook(second, livemode(fixture_text("stripe-ruby-mock/charge.succeeded.json")), secret="whsec_second")
    processing_drain()
    failed = Delivery.objects.get(event_type="invoice.payment_failed")
    Delivery.objects.filter(pk=failed.pk).update(status="failed", last_error="ValueError: broke")
    both = logged_in.get(reverse("webhook-log:index")).content.decode()
    assert "invoice.payment_failed" in both and "charge.succeeded" in both and "Second" in both
    by_id = logged_in.get(reverse("webhook-log:index"), {"q": failed.stripe_event_id}).content.decode()
    assert "invoice.payment_failed" in by_id and "charge.succeeded" not in by_id
    by_email = logged_in.get(reverse("webhook-log:index"), {"q": "Customer@Example.org"}).content.decode()
    assert "invoice.payment_failed" in by_email and "charge.succeeded" not in by_email
    by_type = logged_in.get(reverse("webhook-log:index"), {"q": "charge.succeeded"}).content.decode()
    assert "charge.succeeded" in by_type and "invoice.payment_failed" not in by_type
    page = html.unescape(logged_in.get(reverse("webhook-log:index"), {"status": "failed"}).content.decode())
    assert "Replay the 1 failed or ignored delivery shown" in page
    ids = re.findall(r'name="ids" value="(\d+)"', page)
    client = Client()
    client.force_login(outsider)
    client.post(reverse("webhook-log:replay-many"), {"ids": ids})  # another team's: nothing happens
    assert Delivery.objects.get(pk=failed.pk).status == "failed"
    done = logged_in.post(reverse("webhook-log:replay-many"), {"ids": ids, "status": "failed"}, follow=True)
    assert "1 delivery replayed" in html.unescape(done.content.decode())
    assert Delivery.objects.get(pk=failed.pk).status in {"received", "processed"}


def test_a_delivery_links_to_what_it_led_to_and_its_event_back_to_it(logged_in, endpoint, make_loop, post_webhook):
    make_loop(endpoint.team)
    post_webhook(endpoint, fixture_text("pay/invoice.payment_failed.json"))
    processing_drain()
    delivery = Delivery.objects.get()
    page = logged_in.get(reverse("webhook-log:delivery", args=[delivery.pk])).content.decode()
    event = Event.objects.get(idempotency_key=delivery.stripe_event_id)
    assert f'href="{reverse("loops:event", args=[event.pk])}"' in page
    assert f'href="{reverse("contacts:detail", args=[event.contact_id])}"' in page and "Loop run" in page
    back = logged_in.get(reverse("loops:event", args=[event.pk])).content.decode()
    assert f"{reverse('webhook-log:index')}?q={delivery.stripe_event_id}" in back
