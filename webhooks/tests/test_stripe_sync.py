"""A Stripe restricted key, import and catch-up, against a local stand-in for Stripe's API
(tests/fake_stripe.py): real HTTP, real pagination, real 429s and 500s."""

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from conftest import fixture_json
from contacts.models import Contact, MailingList
from loops.models import Event
from loopsync.celery import app as celery_app
from tests.fake_stripe import customer, invoice, subscription
from webhooks.models import Delivery, Endpoint, StripeSync
from webhooks.services import processing, syncs
from webhooks.stripe_api import StripeUnavailable

pytestmark = pytest.mark.django_db

KEY = "rk_live_" + "a" * 20 + "WXYZ"


@pytest.fixture
def keyed(team, make_endpoint, fake_stripe, settings):
    settings.STRIPE_SYNC_PAGE_SIZE = 100
    fake_stripe.keys[KEY] = "ok"
    endpoint = make_endpoint(team, triggers={"customer.created": "newStripeCustomer"})
    Endpoint.objects.filter(id=endpoint.id).update(api_key=KEY)
    endpoint.refresh_from_db()
    return endpoint


def run(endpoint, kind="import", **kwargs) -> StripeSync:
    sync = syncs.sync_start(endpoint=endpoint, kind=kind, in_celery=False, **kwargs)
    syncs.sync_run(sync_id=sync.id)
    sync.refresh_from_db()
    return sync


# --- the key ---------------------------------------------------------------------------------------


def test_a_key_is_checked_with_one_call_then_saved_and_shown_only_as_a_hint(logged_in, endpoint, fake_stripe):
    fake_stripe.keys[KEY] = "ok"
    response = logged_in.post(reverse("webhook-settings:api-key", args=[endpoint.pk]), {"api_key": KEY})
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.api_key == KEY and endpoint.api_key_hint == "rk_live_…WXYZ"
    assert fake_stripe.requests_to("/v1/customers") == [{"limit": "1"}]
    page = logged_in.get(reverse("webhook-settings:detail", args=[endpoint.pk])).content.decode()
    assert "rk_live_…WXYZ" in page and KEY not in page


@pytest.mark.parametrize(
    ("key", "access", "message"),
    [
        ("rk_live_" + "b" * 24, None, "Stripe does not accept this key"),
        ("rk_live_" + "c" * 24, "no_permission", "give it read access to Customers"),
        ("sk_live_" + "d" * 24, "ok", "Use a restricted key"),
        ("rk_test_" + "e" * 24, "ok", "its key starts with rk_live_"),
        ("nonsense", "ok", "starts with rk_live_"),
    ],
)
def test_a_refused_key_is_not_saved_and_not_echoed(logged_in, endpoint, fake_stripe, key, access, message):
    if access:
        fake_stripe.keys[key] = access
    response = logged_in.post(reverse("webhook-settings:api-key", args=[endpoint.pk]), {"api_key": key})
    body = response.content.decode()
    assert response.status_code == 400 and message in body and key not in body
    endpoint.refresh_from_db()
    assert endpoint.api_key == ""


def test_stripe_unreachable_when_saving_says_so_and_saves_nothing(logged_in, endpoint, settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens there
    settings.STRIPE_API_RETRIES = 0
    response = logged_in.post(reverse("webhook-settings:api-key", args=[endpoint.pk]), {"api_key": KEY})
    assert response.status_code == 400 and "could not be reached" in response.content.decode()
    endpoint.refresh_from_db()
    assert endpoint.api_key == ""


def test_the_key_never_reaches_the_logs(logged_in, endpoint, fake_stripe, caplog):
    caplog.set_level("DEBUG")
    logged_in.post(reverse("webhook-settings:api-key", args=[endpoint.pk]), {"api_key": KEY})  # refused: 401
    fake_stripe.keys[KEY] = "ok"
    logged_in.post(reverse("webhook-settings:api-key", args=[endpoint.pk]), {"api_key": KEY})
    assert KEY not in caplog.text and "a" * 20 not in caplog.text


def test_members_cannot_save_a_key_or_start_a_sync(as_member, keyed):
    for url, data in [
        (reverse("webhook-settings:api-key", args=[keyed.pk]), {"api_key": KEY}),
        (reverse("webhook-settings:sync", args=[keyed.pk, "import"]), {}),
        (reverse("webhook-settings:sync", args=[keyed.pk, "catchup"]), {}),
        (reverse("webhook-settings:options", args=[keyed.pk]), {"customer_deleted": "delete"}),
    ]:
        assert as_member.post(url, data).status_code == 403, url
    assert not StripeSync.objects.exists()
    keyed.refresh_from_db()
    assert keyed.customer_deleted == "unsubscribe"


def test_another_teams_sync_and_endpoint_pages_are_404(client, outsider, keyed):
    sync = run(keyed)
    client.force_login(outsider)
    assert client.get(reverse("webhook-settings:sync-progress", args=[keyed.pk, sync.pk])).status_code == 404
    assert client.post(reverse("webhook-settings:sync", args=[keyed.pk, "import"])).status_code == 404
    assert client.post(reverse("webhook-settings:api-key", args=[keyed.pk]), {"api_key": KEY}).status_code == 404


# --- import ----------------------------------------------------------------------------------------


def test_import_pages_through_customers_subscriptions_and_invoices(keyed, fake_stripe):
    fake_stripe.objects["customers"] = [customer(n) for n in range(250)] + [customer(250, email=None)]
    fake_stripe.objects["subscriptions"] = [subscription(n, f"cus_fake{n:05d}") for n in range(0, 250, 2)]
    fake_stripe.objects["subscriptions"].append(subscription(999, "cus_fake00001", status="canceled"))
    fake_stripe.objects["invoices"] = [invoice(n, "cus_fake00000") for n in range(3)] + [
        invoice(9, "cus_fake00000", status="open")
    ]
    sync = run(keyed)
    assert sync.status == "done" and sync.total == 251 and sync.done == 251
    assert sync.counts == {"created": 250, "no_email": 1, "subscriptions": 126, "paid_invoices": 3}
    # three pages of customers (100, 100, 51), each after the last id of the one before
    pages = fake_stripe.requests_to("/v1/customers")
    assert [p.get("starting_after") for p in pages] == [None, "cus_fake00099", "cus_fake00199"]
    assert fake_stripe.requests_to("/v1/subscriptions")[0]["status"] == "all"
    first = Contact.objects.get(email="customer0@example.com")
    assert first.stripe_customer_id == "cus_fake00000" and first.source == "Stripe import"
    assert (first.properties["planName"], first.properties["mrr"], first.properties["ltv"]) == ("Pro", 19.0, 57.0)
    second = Contact.objects.get(email="customer1@example.com")
    assert second.properties["subscriptionStatus"] == "canceled" and second.properties["mrr"] == 0
    assert not Event.objects.exists()  # no event unless asked


def test_import_can_fire_events_once_however_often_it_runs(keyed, fake_stripe):
    fake_stripe.objects["customers"] = [customer(n) for n in range(3)]
    run(keyed, fire_events=True)
    run(keyed, fire_events=True)
    assert Event.objects.filter(name="newStripeCustomer").count() == 3


def test_import_waits_out_a_429_and_rides_over_a_500(keyed, fake_stripe, settings):
    settings.STRIPE_SYNC_PAGE_SIZE = 10
    fake_stripe.objects["customers"] = [customer(n) for n in range(25)]
    fake_stripe.fail_next("/v1/customers", 429)  # the first page: waited out by LoopSync
    sync = syncs.sync_start(endpoint=keyed, kind="import", in_celery=False)
    original = fake_stripe.answer

    def answer(path, query, key):  # a 500 on the second page (the library retries it), a 429 on the third
        if (
            path == "/v1/customers"
            and query.get("starting_after") == "cus_fake00009"
            and not getattr(answer, "done", 0)
        ):
            answer.done = 1
            fake_stripe.fail_next(path, 500, 429)
        return original(path, query, key)

    fake_stripe.answer = answer
    assert syncs.sync_run(sync_id=sync.id) == "done"
    assert Contact.objects.count() == 25
    statuses = [q.get("starting_after") for q in fake_stripe.requests_to("/v1/customers")]
    assert statuses.count(None) == 2 and statuses.count("cus_fake00009") == 3  # 429 retried; 500 then 429


def test_import_stops_on_a_revoked_key_with_its_reason(keyed, fake_stripe):
    fake_stripe.objects["customers"] = [customer(0)]
    fake_stripe.keys[KEY] = "no_permission"
    sync = run(keyed)
    assert sync.status == "failed" and "read access" in sync.last_error


def test_an_interrupted_import_resumes_after_its_last_page(keyed, fake_stripe, settings):
    settings.STRIPE_SYNC_PAGE_SIZE = 10
    fake_stripe.objects["customers"] = [customer(n) for n in range(30)]
    sync = syncs.sync_start(endpoint=keyed, kind="import", in_celery=False)

    def die_after_two_pages(current):
        if current.done == 20:
            raise KeyboardInterrupt  # the worker dies: nothing after this page is saved

    with pytest.raises(KeyboardInterrupt):
        syncs.sync_run(sync_id=sync.id, progress=die_after_two_pages)
    sync.refresh_from_db()
    assert (sync.status, sync.phase, sync.cursor, sync.done) == ("running", "customers", "cus_fake00019", 20)
    StripeSync.objects.filter(id=sync.id).update(heartbeat_at=sync.heartbeat_at - syncs.STALE_AFTER)
    again = syncs.sync_start(endpoint=keyed, kind="import", in_celery=False)
    assert again.id == sync.id  # the unfinished one is resumed, not a second one started
    assert syncs.sync_run(sync_id=sync.id) == "done"
    assert [q.get("starting_after") for q in fake_stripe.requests_to("/v1/customers")][-1] == "cus_fake00019"
    assert Contact.objects.count() == 30


def test_a_running_import_is_not_run_twice(keyed, fake_stripe):
    sync = syncs.sync_start(endpoint=keyed, kind="import", in_celery=False)
    StripeSync.objects.filter(id=sync.id).update(status="running", heartbeat_at=timezone.now())  # a live worker
    assert syncs.sync_run(sync_id=sync.id) == ""


def test_import_replays_deliveries_ignored_as_customer_unknown(keyed, fake_stripe, post_webhook):
    Endpoint.objects.filter(id=keyed.id).update(api_key="")  # no key when the event came
    payload = fixture_json("stripe-ruby-mock/customer.subscription.created.json") | {"livemode": True}
    post_webhook(keyed, json.dumps(payload))
    processing.deliveries_drain()
    assert Delivery.objects.get().ignored_reason == "customer_unknown"
    Endpoint.objects.filter(id=keyed.id).update(api_key=KEY)
    keyed.refresh_from_db()
    fake_stripe.objects["customers"] = [customer(0) | {"id": "cus_00000000000000"}]
    sync = run(keyed)
    assert sync.counts["replayed"] == 1
    processing.deliveries_drain()
    assert Delivery.objects.get().status == "processed"
    assert Contact.objects.get().properties["subscriptionStatus"] == "active"


def test_import_gives_new_contacts_the_endpoints_options(keyed, fake_stripe, team):
    newsletter = MailingList.objects.create(team=team, name="Customers")
    Endpoint.objects.filter(id=keyed.id).update(new_contact_user_group="paying", new_contact_list=newsletter)
    keyed.refresh_from_db()
    fake_stripe.objects["customers"] = [customer(0)]
    run(keyed)
    contact = Contact.objects.get()
    assert contact.user_group == "paying" and contact.mailing_lists.get() == newsletter


def test_the_import_runs_in_celery_and_its_page_shows_progress_then_a_summary(
    logged_in, keyed, fake_stripe, django_capture_on_commit_callbacks
):
    fake_stripe.objects["customers"] = [customer(n) for n in range(3)]
    eager, celery_app.conf.task_always_eager = celery_app.conf.task_always_eager, True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = logged_in.post(reverse("webhook-settings:sync", args=[keyed.pk, "import"]), {})
    finally:
        celery_app.conf.task_always_eager = eager
    assert response.status_code == 302
    sync = StripeSync.objects.get()
    assert sync.status == "done" and sync.created_by.username == "owner"
    partial = logged_in.get(reverse("webhook-settings:sync-progress", args=[keyed.pk, sync.pk])).content.decode()
    assert "3 customers read." in partial and "Contacts created: 3" in partial and "hx-get" not in partial


def test_an_unfinished_sync_polls_its_progress(logged_in, keyed):
    sync = StripeSync.objects.create(
        team=keyed.team, endpoint=keyed, kind="import", status="running", phase="customers", done=40, total=100
    )
    partial = logged_in.get(reverse("webhook-settings:sync-progress", args=[keyed.pk, sync.pk])).content.decode()
    assert 'hx-trigger="load delay:1s"' in partial and 'value="40"' in partial and "40 of about 100" in partial


def test_without_a_key_import_is_refused_with_a_message(logged_in, endpoint):
    response = logged_in.post(reverse("webhook-settings:sync", args=[endpoint.pk, "import"]), {})
    assert response.status_code == 400 and "Save a Stripe restricted key first" in response.content.decode()
    assert not StripeSync.objects.exists()


# --- catch-up --------------------------------------------------------------------------------------


def _event(name: str, event_id: str, created: int) -> dict:
    return fixture_json(name) | {"id": event_id, "created": created, "livemode": True}


def test_catch_up_feeds_missed_events_through_the_receive_path_oldest_first_without_doubles(
    keyed, fake_stripe, post_webhook
):
    now = int(timezone.now().timestamp())
    received = _event("dj-stripe/customer.created.with_name.json", "evt_seen", now - 3 * 3600)
    post_webhook(keyed, json.dumps(received))  # came as a webhook before the outage
    fake_stripe.objects["events"] = [
        _event("dj-stripe/customer.created.with_name.json", "evt_older", now - 4 * 3600),  # before the start
        received,
        _event("dj-stripe/customer.created.email_only.json", "evt_missed", now - 2 * 3600),
        _event("openapi/event.plan.created.json", "evt_plan", now - 3600),  # not a type LoopSync takes
        _event("dj-stripe/customer.deleted.email_only.json", "evt_deleted", now - 60),
    ]
    sync = run(keyed, kind="catchup")
    assert sync.status == "done" and sync.counts == {"duplicate": 1, "queued": 2, "not_supported": 1}
    # from the newest event before the newest delivery on, oldest first
    assert fake_stripe.requests_to("/v1/events")[0]["created[lt]"] == str(now - 3 * 3600)
    assert fake_stripe.requests_to("/v1/events")[1]["ending_before"] == "evt_older"
    stored = list(Delivery.objects.filter(endpoint=keyed).order_by("id").values_list("stripe_event_id", flat=True))
    assert stored == ["evt_seen", "evt_missed", "evt_deleted"]  # drained in the order they happened
    processing.deliveries_drain()
    assert Event.objects.filter(name="newStripeCustomer").count() == 2
    assert not Contact.objects.get(email="michael.smith@example.com").subscribed  # created, then deleted
    run(keyed, kind="catchup")  # again: everything is a duplicate now
    assert Event.objects.count() == 2 and Delivery.objects.count() == 3


def test_catch_up_since_a_given_time_refuses_more_than_stripe_keeps_and_the_future(keyed):
    with pytest.raises(ValidationError, match="30 days"):
        syncs.sync_start(endpoint=keyed, kind="catchup", since=timezone.now() - timedelta(days=31))
    with pytest.raises(ValidationError, match="in the future"):
        syncs.sync_start(endpoint=keyed, kind="catchup", since=timezone.now() + timedelta(days=1))


# --- the command -----------------------------------------------------------------------------------


def test_the_command_imports_with_a_progress_bar_and_a_summary(keyed, fake_stripe):
    fake_stripe.objects["customers"] = [customer(n) for n in range(5)]
    out, err = StringIO(), StringIO()
    call_command("stripe_sync", "import", "--endpoint", str(keyed.uuid), stdout=out, stderr=err)
    assert "Import customers done. Contacts created: 5" in out.getvalue()
    assert "5/5" in err.getvalue()  # tqdm's bar: done of total
    assert Contact.objects.count() == 5


def test_the_command_catches_up_since_a_time(keyed, fake_stripe):
    an_hour_ago = int(timezone.now().timestamp()) - 3600
    fake_stripe.objects["events"] = [_event("dj-stripe/customer.created.email_only.json", "evt_1", an_hour_ago)]
    since = datetime.fromtimestamp(an_hour_ago - 60, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = StringIO()
    call_command(
        "stripe_sync", "catchup", "--endpoint", str(keyed.uuid), "--since", since, stdout=out, stderr=StringIO()
    )
    assert fake_stripe.requests_to("/v1/events")[0]["created[lt]"] == str(an_hour_ago - 60)
    assert "New events, processed like webhooks (the webhook log has each): 1" in out.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["import", "--endpoint", "00000000-0000-0000-0000-000000000000"], "No endpoint has the UUID"),
        (["import", "--endpoint", "not-a-uuid"], "No endpoint has the UUID"),
        (["catchup", "--endpoint", "{uuid}", "--since", "yesterday"], "ISO 8601"),
    ],
)
def test_the_command_says_what_is_wrong(keyed, args, message):
    args = [a.format(uuid=keyed.uuid) for a in args]
    with pytest.raises(CommandError, match=message):
        call_command("stripe_sync", *args, stdout=StringIO(), stderr=StringIO())


def test_the_command_needs_a_key(endpoint):
    with pytest.raises(CommandError, match="Save a Stripe restricted key first"):
        call_command("stripe_sync", "import", "--endpoint", str(endpoint.uuid), stdout=StringIO(), stderr=StringIO())


def test_the_sync_box_offers_resume_only_when_the_worker_is_gone(logged_in, keyed):
    sync = StripeSync.objects.create(
        team=keyed.team, endpoint=keyed, kind="import", status="running", phase="subscriptions",
        done=250, total=250, heartbeat_at=timezone.now(),
    )  # fmt: skip
    url = reverse("webhook-settings:sync-progress", args=[keyed.pk, sync.pk])
    running = logged_in.get(url).content.decode()
    assert "now: subscriptions" in running and 'value="99"' in running and "<button" not in running
    StripeSync.objects.filter(id=sync.id).update(heartbeat_at=timezone.now() - StripeSync.STALE_AFTER)
    stalled = logged_in.get(url).content.decode()
    assert "Resume import" in stalled and "Also fire events" not in stalled
    StripeSync.objects.filter(id=sync.id).update(status="done")
    done = logged_in.get(url).content.decode()
    assert "Import customers</button>" in done and "hx-get" not in done and 'value="100"' in done


def test_another_teams_options_and_catch_up_are_404(client, outsider, keyed):
    client.force_login(outsider)
    options = reverse("webhook-settings:options", args=[keyed.pk])
    assert client.post(options, {"customer_deleted": "delete"}).status_code == 404
    assert client.post(reverse("webhook-settings:sync", args=[keyed.pk, "catchup"])).status_code == 404
    keyed.refresh_from_db()
    assert keyed.customer_deleted == "unsubscribe" and not StripeSync.objects.exists()


def test_stripe_down_mid_catch_up_leaves_it_to_resume_from_its_last_page(keyed, fake_stripe, settings):
    settings.STRIPE_SYNC_PAGE_SIZE = 2
    base = int(timezone.now().timestamp()) - 3600
    fake_stripe.objects["events"] = [
        _event("dj-stripe/customer.created.email_only.json", f"evt_{n}", base + n) for n in range(5)
    ] + [_event("dj-stripe/customer.created.email_only.json", "evt_old", base - 7200)]
    sync = syncs.sync_start(endpoint=keyed, kind="catchup", since=timezone.now() - timedelta(hours=2), in_celery=False)
    calls = {"n": 0}
    original = fake_stripe.answer

    def answer(path, query, key):  # the second page never comes: Stripe is down
        if path == "/v1/events":
            calls["n"] += 1
            if calls["n"] == 3:
                return 503, {"error": {"type": "api_error", "message": "down"}}
        return original(path, query, key)

    fake_stripe.answer = answer
    settings.STRIPE_API_RETRIES = 0
    with pytest.raises(StripeUnavailable):
        syncs.sync_run(sync_id=sync.id)
    sync.refresh_from_db()
    assert (sync.status, sync.done, sync.cursor) == ("queued", 2, "evt_1")  # oldest first: evt_0, evt_1
    assert "goes on from where it stopped" in sync.last_error and Delivery.objects.count() == 2
    StripeSync.objects.filter(id=sync.id).update(heartbeat_at=timezone.now() - timedelta(minutes=2))
    assert syncs.syncs_sweep() == 1  # the sweep starts it again (run at once when there is no broker)
    syncs.sync_run(sync_id=sync.id)  # or here, as a worker would
    sync.refresh_from_db()
    assert sync.status == "done"
    assert list(Delivery.objects.order_by("id").values_list("stripe_event_id", flat=True)) == [
        "evt_0", "evt_1", "evt_2", "evt_3", "evt_4"
    ]  # fmt: skip
    cursors = [q.get("ending_before") for q in fake_stripe.requests_to("/v1/events")]
    assert cursors == [None, "evt_old", "evt_1", "evt_3"]  # went on after evt_1, never started over


def test_the_task_hands_over_when_its_budget_is_spent(keyed, fake_stripe, settings):
    settings.STRIPE_SYNC_PAGE_SIZE = 2
    fake_stripe.objects["customers"] = [customer(n) for n in range(5)]
    sync = syncs.sync_start(endpoint=keyed, kind="import", in_celery=False)
    assert syncs.sync_run(sync_id=sync.id, budget_seconds=0) == "queued"  # one page, then hand over
    sync.refresh_from_db()
    assert (sync.status, sync.done, sync.cursor) == ("queued", 2, "cus_fake00001")
    assert syncs.sync_run(sync_id=sync.id) == "done" and Contact.objects.count() == 5


def test_a_worker_given_up_on_cannot_overwrite_the_one_that_took_over(keyed, fake_stripe):
    fake_stripe.objects["customers"] = [customer(0)]
    sync = syncs.sync_start(endpoint=keyed, kind="import", in_celery=False)
    first = StripeSync.objects.get(id=sync.id)
    first.claim = syncs._claim(sync.id)
    StripeSync.objects.filter(id=sync.id).update(heartbeat_at=timezone.now() - StripeSync.STALE_AFTER)
    assert syncs.sync_run(sync_id=sync.id) == "done"  # the second worker
    with pytest.raises(syncs._Lost):
        syncs._save(first, status="queued")
    assert StripeSync.objects.get(id=sync.id).status == "done"


def test_an_import_resumes_even_when_its_cursor_was_deleted_meanwhile(keyed, fake_stripe):
    fake_stripe.objects["customers"] = [customer(n) for n in range(3)]
    sync = syncs.sync_start(endpoint=keyed, kind="import", in_celery=False)
    StripeSync.objects.filter(id=sync.id).update(phase="customers", cursor="cus_deleted_meanwhile")
    assert syncs.sync_run(sync_id=sync.id) == "done"
    assert Contact.objects.count() == 3  # started the listing over


def test_a_running_sync_cannot_be_started_twice_and_a_stalled_one_resumes_with_its_options(keyed):
    sync = syncs.sync_start(endpoint=keyed, kind="import", fire_events=True, in_celery=False)
    StripeSync.objects.filter(id=sync.id).update(status="running", heartbeat_at=timezone.now())
    with pytest.raises(syncs.SyncRunning, match="running already"):
        syncs.sync_start(endpoint=keyed, kind="import", in_celery=False)
    StripeSync.objects.filter(id=sync.id).update(heartbeat_at=timezone.now() - StripeSync.STALE_AFTER)
    again = syncs.sync_start(endpoint=keyed, kind="import", fire_events=False, in_celery=False)
    assert again.id == sync.id and again.resumed and again.fire_events is True


def test_an_unexpected_error_fails_the_sync_with_its_reason_instead_of_looping(keyed, fake_stripe):
    fake_stripe.objects["customers"] = [customer(0) | {"email": ["not", "text"]}, customer(1)]
    original = syncs._customers

    def broken(sync, page, fetched_at):
        raise RuntimeError("a bug")

    syncs._customers = broken
    try:
        sync = run(keyed)
    finally:
        syncs._customers = original
    assert sync.status == "failed" and "RuntimeError: a bug" in sync.last_error


def test_the_command_says_to_rerun_when_stripe_is_down_and_the_rerun_resumes(keyed, fake_stripe):
    fake_stripe.objects["customers"] = [customer(0)]
    fake_stripe.fail_next("/v1/customers/search", 500, 500, 500)  # the count is optional: Stripe down still
    fake_stripe.fail_next("/v1/customers", 500, 500, 500)
    with pytest.raises(CommandError, match="Run the command again"):
        call_command("stripe_sync", "import", "--endpoint", str(keyed.uuid), stdout=StringIO(), stderr=StringIO())
    out = StringIO()
    call_command("stripe_sync", "import", "--endpoint", str(keyed.uuid), stdout=out, stderr=StringIO())
    assert "Resuming the import customers" in out.getvalue() and Contact.objects.count() == 1


def test_no_key_reaches_the_logs_on_the_import_and_look_up_paths(keyed, fake_stripe, caplog, post_webhook):
    caplog.set_level("DEBUG")
    fake_stripe.objects["customers"] = [customer(0)]
    fake_stripe.fail_next("/v1/customers", 500, 500, 500)
    with pytest.raises(StripeUnavailable):
        run(keyed)
    fake_stripe.keys[KEY] = "no_permission"
    run(keyed)
    payload = fixture_json("stripe-ruby-mock/quote.finalized.json") | {"livemode": True}
    post_webhook(keyed, json.dumps(payload))
    processing.deliveries_drain()
    processing.delivery_process(delivery_id=Delivery.objects.get().id)
    assert KEY not in caplog.text and "a" * 20 not in caplog.text
    assert "Stripe refused the customer look-up" in caplog.text  # the failure itself is logged, by its kind


def test_the_catch_up_form_says_where_it_starts_and_why(logged_in, keyed, post_webhook):
    page = logged_in.get(reverse("webhook-settings:detail", args=[keyed.pk])).content.decode()
    assert "when this endpoint was made (it has received no event yet)" in page
    received = _event("dj-stripe/customer.created.with_name.json", "evt_seen", int(timezone.now().timestamp()) - 60)
    post_webhook(keyed, json.dumps(received))
    page = logged_in.get(reverse("webhook-settings:detail", args=[keyed.pk])).content.decode()
    assert "the newest event this endpoint received" in page
    future = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    refused = logged_in.post(reverse("webhook-settings:sync", args=[keyed.pk, "catchup"]), {"since": future})
    body = refused.content.decode()
    assert refused.status_code == 400 and "in the future" in body and "the newest event this endpoint received" in body
