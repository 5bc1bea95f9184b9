"""The loop editor: trigger, steps (add, edit, remove, reorder), live preview and test email."""

import html
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from conftest import builder_post, main_line, paths_post
from contacts.models import Contact, MailingList
from loops.models import EmailMessage, Event, Loop, LoopRun, LoopStep
from loops.services import loop_archive
from loops.services.specs import MAX_SPEC_BYTES

pytestmark = pytest.mark.django_db

EMAIL = {
    "kind": "email",
    "subject": "Hi {{ contact.first_name }}",
    "preview_text": "",
    "body": "Hello **{{ contact.first_name }}**, you owe {{ event.amount_formatted }}.",
    "from_name": "",
    "from_email": "",
    "reply_to": "",
}


@pytest.fixture
def draft(team, make_loop):
    return make_loop(team, activate=False)  # "Stripe - Payment Failed": email, wait for event, email


def kinds(loop):
    return [step.kind for step in main_line(loop)]


# --- trigger -------------------------------------------------------------------------------------


def test_saves_name_and_trigger(logged_in, draft):
    response = logged_in.post(
        reverse("loops:loop", args=[draft.pk]),
        {"name": "Dunning", "trigger": "event", "trigger_event_name": "paymentFailed"},
    )
    assert response.status_code == 302
    draft.refresh_from_db()
    assert (draft.name, draft.trigger_event_name) == ("Dunning", "paymentFailed")


def test_a_blank_loop_starts_as_a_draft_with_a_free_name(logged_in, team, other_team):
    Loop.objects.create(team=other_team, name="Untitled loop")  # another team's name is no obstacle
    for expected in ("Untitled loop", "Untitled loop (2)"):
        response = logged_in.post(reverse("loops:loop-new"), {"blank": "1"})
        loop = Loop.objects.get(team=team, name=expected)
        assert response.url == reverse("loops:loop", args=[loop.pk])
        assert loop.status == Loop.Status.DRAFT and loop.trigger == Loop.Trigger.EVENT and not loop.steps.exists()
    page = logged_in.get(reverse("loops:loop", args=[loop.pk])).content.decode()
    # Each trigger's fields are marked with it: the page shows the chosen trigger's only (app.css, by :has())
    assert '<div class="field" data-for-trigger="event">' in page and 'data-for-trigger="list_added"' in page
    assert 'data-for-trigger="contact_updated" data-row="trigger-from"' in page


@pytest.mark.parametrize(
    ("event_name", "message"),
    [("failed payment", "no spaces"), ("", "Name the event that starts this loop")],
)
def test_a_bad_trigger_keeps_the_form_and_saves_nothing(logged_in, draft, event_name, message):
    response = logged_in.post(
        reverse("loops:loop", args=[draft.pk]),
        {"name": "Renamed", "trigger": "event", "trigger_event_name": event_name},
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert message in body and 'value="Renamed"' in body  # what was typed is kept
    draft.refresh_from_db()
    assert (draft.name, draft.trigger_event_name) == ("Stripe - Payment Failed", "failedPayment")


def test_contact_added_trigger_needs_no_event_name(logged_in, draft):
    logged_in.post(
        reverse("loops:loop", args=[draft.pk]),
        {"name": draft.name, "trigger": "contact_added", "trigger_event_name": "failedPayment"},
    )
    draft.refresh_from_db()
    assert (draft.trigger, draft.trigger_event_name) == ("contact_added", "")


def test_trigger_field_offers_the_teams_event_names(logged_in, team, draft, make_endpoint, other_team):
    make_endpoint(team, triggers={"invoice.paid": "paidInvoiceFromStripe"})
    contact = Contact.objects.create(team=team, email="ada@example.com")
    Event.objects.create(team=team, contact=contact, name="trialEnded")
    other = Contact.objects.create(team=other_team, email="x@globex.test")
    Event.objects.create(team=other_team, contact=other, name="globexSecretEvent")
    body = logged_in.get(reverse("loops:loop", args=[draft.pk])).content.decode()
    datalist = body.split('<datalist id="event-names">')[1].split("</datalist>")[0]
    for name in ("paidInvoiceFromStripe", "trialEnded", "failedPayment"):
        assert f'value="{name}"' in datalist
    assert "globexSecretEvent" not in body
    assert 'list="event-names"' in body


# --- steps ---------------------------------------------------------------------------------------


def test_adds_an_email_step_at_the_end(logged_in, draft):
    form = logged_in.get(reverse("loops:step-new", args=[draft.pk]), {"kind": "email"})
    assert form.status_code == 200 and "New step: Send email" in form.content.decode()
    response = logged_in.post(reverse("loops:step-new", args=[draft.pk]), EMAIL)
    assert response.status_code == 302
    assert kinds(draft) == ["email", "wait_event", "email", "email"]
    assert main_line(draft)[3].subject == "Hi {{ contact.first_name }}"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"subject": ""}, "An email needs a subject."),
        ({"body": "Hi {% if contact.first_name %}there"}, "The body has an error"),
        ({"from_email": "not an address"}, "Enter a valid email address."),
    ],
)
def test_an_invalid_step_is_shown_again_and_not_saved(logged_in, draft, changes, message):
    response = logged_in.post(reverse("loops:step-new", args=[draft.pk]), {**EMAIL, **changes})
    assert response.status_code == 400
    body = response.content.decode()
    assert html.escape(message, quote=False) in body and "Nothing was saved" in body
    assert draft.steps.count() == 3


def test_adds_a_timer_and_refuses_a_zero_wait(logged_in, draft):
    url = reverse("loops:step-new", args=[draft.pk])
    refused = logged_in.post(url, {"kind": "timer", "delay_value": "0", "delay_unit": "days"})
    assert refused.status_code == 400 and "A timer waits at least 1 day." in refused.content.decode()
    logged_in.post(url, {"kind": "timer", "delay_value": "2", "delay_unit": "hours"})
    timer = main_line(draft)[3]
    assert (timer.kind, timer.delay_value, timer.delay_unit) == ("timer", 2, "hours")


def test_an_unknown_kind_is_404(logged_in, draft):
    assert logged_in.get(reverse("loops:step-new", args=[draft.pk]), {"kind": "webhook"}).status_code == 404


def test_edits_a_step(logged_in, draft):
    step = main_line(draft)[0]
    page = logged_in.get(reverse("loops:step", args=[draft.pk, step.pk])).content.decode()
    assert "<h1>Send email</h1>" in page and "Send a test to me" in page
    logged_in.post(reverse("loops:step", args=[draft.pk, step.pk]), {**EMAIL, "subject": "New subject"})
    step.refresh_from_db()
    assert step.subject == "New subject"


def test_an_active_loop_takes_content_and_structure_edits(logged_in, team, make_loop):
    loop = make_loop(team)  # active
    first, wait, last = main_line(loop)
    logged_in.post(reverse("loops:step", args=[loop.pk, first.pk]), {**EMAIL, "subject": "Fixed a typo"})
    first.refresh_from_db()
    assert first.subject == "Fixed a typo"
    logged_in.post(reverse("loops:step-new", args=[loop.pk]), EMAIL)
    logged_in.post(reverse("loops:step-move", args=[loop.pk, first.pk]), {"direction": "down"})
    logged_in.post(reverse("loops:step-delete", args=[loop.pk, last.pk]))
    assert [step.pk for step in main_line(loop)][:2] == [wait.pk, first.pk] and len(main_line(loop)) == 3


def test_reorders_steps(logged_in, draft):
    first, wait, last = main_line(draft)

    def order():
        return [step.pk for step in main_line(draft)]

    logged_in.post(reverse("loops:step-move", args=[draft.pk, last.pk]), {"direction": "up"})
    assert order() == [first.pk, last.pk, wait.pk]
    logged_in.post(reverse("loops:step-move", args=[draft.pk, first.pk]), {"direction": "up"})  # already first
    assert order() == [first.pk, last.pk, wait.pk]
    logged_in.post(reverse("loops:step-move", args=[draft.pk, first.pk]), {"direction": "down"})
    assert order() == [last.pk, first.pk, wait.pk]
    assert kinds(draft) == ["email", "email", "wait_event"]


def test_removes_a_step_after_confirming_and_closes_the_gap(logged_in, draft):
    first, wait, last = main_line(draft)
    confirm = logged_in.get(reverse("loops:step-delete", args=[draft.pk, wait.pk]))
    assert "Remove this step (Wait for event)?" in confirm.content.decode()
    assert draft.steps.count() == 3  # asking is not removing
    logged_in.post(reverse("loops:step-delete", args=[draft.pk, wait.pk]))
    assert main_line(draft) == [first, last]


def test_the_removal_confirmation_says_where_the_runs_at_the_step_go(logged_in, team, draft):
    first, wait, last = main_line(draft)
    for number, step in enumerate([wait, last]):
        contact = Contact.objects.create(team=team, email=f"c{number}@example.com")
        LoopRun.objects.create(team=team, loop=draft, contact=contact, step=step, status=LoopRun.Status.WAITING)
    confirm = html.unescape(logged_in.get(reverse("loops:step-delete", args=[draft.pk, wait.pk])).content.decode())
    assert f"1 contact at this step goes on now with the next one, step 3 (send email “{last.subject}”)." in confirm
    confirm = html.unescape(logged_in.get(reverse("loops:step-delete", args=[draft.pk, last.pk])).content.decode())
    assert "No step follows it. 1 contact at this step finishes the loop now." in confirm


def test_removing_a_step_keeps_the_emails_it_sent(logged_in, team, draft):
    contact = Contact.objects.create(team=team, email="ada@example.com")
    step = main_line(draft)[0]
    sent = EmailMessage.objects.create(
        team=team, contact=contact, step=step, to_email=contact.email, from_email="a@b.c", subject="s",
        html_body="h", text_body="t", status="sent",
    )  # fmt: skip
    logged_in.post(reverse("loops:step-delete", args=[draft.pk, step.pk]))
    sent.refresh_from_db()
    assert sent.step_id is None and sent.status == "sent"


def test_a_step_of_another_loop_is_404(logged_in, team, draft, make_loop):
    other_loop = make_loop(team, activate=False)
    step = other_loop.steps.first()
    assert logged_in.get(reverse("loops:step", args=[draft.pk, step.pk])).status_code == 404
    assert logged_in.post(reverse("loops:step-delete", args=[draft.pk, step.pk])).status_code == 404
    assert other_loop.steps.count() == 3


# --- preview -------------------------------------------------------------------------------------


def test_preview_renders_the_unsaved_email_for_a_chosen_contact(logged_in, team, draft):
    contact = Contact.objects.create(team=team, email="Grace@Example.com", first_name="Grace")
    Event.objects.create(team=team, contact=contact, name="failedPayment", properties={"amount_formatted": "$42.00"})
    response = logged_in.post(
        reverse("loops:step-preview", args=[draft.pk]), {**EMAIL, "preview_email": "grace@example.com"}
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "Hi Grace" in body and "Grace@Example.com" in body
    srcdoc = html.unescape(body.split('srcdoc="')[1].split('"></iframe>')[0])
    assert "Hello <strong>Grace</strong>, you owe $42.00." in srcdoc


def test_preview_for_a_test_contact_uses_it_and_its_test_event(logged_in, team, draft):
    """A contact only in Audience → Test data (what Send test event makes) can be previewed for; the live
    contact of the same email comes first."""
    contact = Contact.objects.create(team=team, email="grace@example.com", first_name="Grace", livemode=False)
    Event.objects.create(
        team=team, contact=contact, name="failedPayment", properties={"amount_formatted": "$7.00"}, livemode=False
    )
    preview = {**EMAIL, "preview_email": "grace@example.com"}
    body = logged_in.post(reverse("loops:step-preview", args=[draft.pk]), preview).content.decode()
    assert "No contact with that email" not in body and "Hi Grace" in body and "you owe $7.00" in body
    Contact.objects.create(team=team, email="grace@example.com", first_name="Live Grace")
    body = logged_in.post(reverse("loops:step-preview", args=[draft.pk]), preview).content.decode()
    assert "Hi Live Grace" in body


def test_preview_of_an_unknown_email_uses_a_sample_contact(logged_in, draft):
    body = logged_in.post(
        reverse("loops:step-preview", args=[draft.pk]), {**EMAIL, "preview_email": "nobody@example.com"}
    ).content.decode()
    assert "No contact with that email" in body and "Hi Ada" in body


def test_preview_escapes_contact_values(logged_in, team, draft):
    Contact.objects.create(team=team, email="eve@example.com", first_name="<script>alert(1)</script>")
    body = logged_in.post(
        reverse("loops:step-preview", args=[draft.pk]), {**EMAIL, "preview_email": "eve@example.com"}
    ).content.decode()
    assert "<script>" not in body
    srcdoc = html.unescape(body.split('srcdoc="')[1].split('"></iframe>')[0])
    assert "<script>" not in srcdoc and "&lt;script&gt;" in srcdoc
    assert "sandbox" in body


def test_preview_shows_a_template_error(logged_in, draft):
    body = logged_in.post(
        reverse("loops:step-preview", args=[draft.pk]), {**EMAIL, "body": "{{ contact.first_name | nosuchfilter }}"}
    ).content.decode()
    assert "The preview cannot render" in body and "nosuchfilter" in body


def test_edit_page_renders_the_preview_on_load(logged_in, draft):
    step = main_line(draft)[0]
    body = logged_in.get(reverse("loops:step", args=[draft.pk, step.pk])).content.decode()
    preview_url = reverse("loops:step-preview", args=[draft.pk])
    assert f'hx-post="{preview_url}"' in body
    assert '<dd data-testid="preview-subject">Your payment of $25.00 didn&#x27;t go through</dd>' in body


# --- test email ----------------------------------------------------------------------------------


def test_sends_a_test_email_to_the_current_user_over_smtp(logged_in, user, team, draft, smtp_server):
    Contact.objects.create(team=team, email="grace@example.com", first_name="Grace")
    response = logged_in.post(
        reverse("loops:step-test", args=[draft.pk]),
        {**EMAIL, "preview_email": "grace@example.com"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert f"Test email sent to {user.email}." in response.content.decode()
    [received] = smtp_server.messages
    assert received["To"] == user.email and received["Subject"] == "[Test] Hi Grace"
    assert "Hello Grace" in received.get_body(preferencelist=("plain",)).get_content()
    assert not EmailMessage.objects.exists()  # a test is not a contact's email


def test_test_email_refused_by_the_server_says_why(logged_in, user, draft, smtp_server):
    smtp_server.refuse.add(user.email)
    body = logged_in.post(reverse("loops:step-test", args=[draft.pk]), EMAIL, HTTP_HX_REQUEST="true").content.decode()
    assert "could not be sent" in body and "550" in body
    assert smtp_server.messages == []


def test_test_email_of_an_invalid_step_sends_nothing(logged_in, draft, smtp_server):
    body = logged_in.post(
        reverse("loops:step-test", args=[draft.pk]), {**EMAIL, "subject": ""}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "Fix the errors" in body and smtp_server.messages == []


def test_test_email_without_htmx_shows_the_editor_with_the_form_kept(logged_in, draft, smtp_server):
    step = main_line(draft)[0]
    response = logged_in.post(
        reverse("loops:step-test", args=[draft.pk]), {**EMAIL, "step": step.pk, "subject": "Unsaved subject"}
    )
    body = response.content.decode()
    assert "Test email sent to" in body and 'value="Unsaved subject"' in body and "<h1>Send email</h1>" in body
    step.refresh_from_db()
    assert step.subject != "Unsaved subject"  # a test does not save


# --- tenancy and CSRF ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "method", "with_step"),
    [
        ("loops:loop", "post", False),
        ("loops:step-new", "get", False),
        ("loops:step-new", "post", False),
        ("loops:step", "get", True),
        ("loops:step", "post", True),
        ("loops:step-move", "post", True),
        ("loops:step-delete", "get", True),
        ("loops:step-delete", "post", True),
        ("loops:step-preview", "post", False),
        ("loops:step-test", "post", False),
        ("loops:loop-duplicate", "post", False),
        ("loops:loop-delete", "get", False),
        ("loops:loop-delete", "post", False),
        ("loops:loop-download", "get", False),
        ("loops:loop-status", "post", False),
        ("loops:loop-runs", "get", False),
    ],
)
def test_another_teams_user_gets_404(client, outsider, draft, name, method, with_step, smtp_server):
    client.force_login(outsider)
    step = main_line(draft)[0]
    args = [draft.pk, step.pk] if with_step else [draft.pk]
    data = {**EMAIL, "name": "Hijacked", "trigger": "event", "trigger_event_name": "x", "direction": "down"}
    url = reverse(name, args=args) + ("?kind=email" if name == "loops:step-new" else "")
    assert getattr(client, method)(url, data).status_code == 404
    draft.refresh_from_db()
    assert draft.name == "Stripe - Payment Failed" and [s.pk for s in main_line(draft)][0] == step.pk
    assert LoopStep.objects.filter(loop=draft).count() == 3 and smtp_server.messages == []


def test_editor_forms_need_csrf(user, draft):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(user)
    step = main_line(draft)[0]
    for url in (
        reverse("loops:loop", args=[draft.pk]),
        reverse("loops:step", args=[draft.pk, step.pk]),
        reverse("loops:step-move", args=[draft.pk, step.pk]),
        reverse("loops:step-test", args=[draft.pk]),
    ):
        assert csrf_client.post(url, {**EMAIL, "direction": "down"}).status_code == 403
    assert main_line(Loop.objects.get(pk=draft.pk))[0].pk == step.pk


# --- the new kinds of step -----------------------------------------------------------------------


def test_a_filter_offers_known_fields_and_refuses_an_unknown_one(logged_in, draft):
    url = reverse("loops:step-new", args=[draft.pk])
    page = logged_in.get(url, {"kind": "filter"}).content.decode()
    assert 'value="contact.first_name"' in page and 'value="contact.properties.subscriptionStatus"' in page
    assert 'value="event.amount"' in page and 'value="event.invoice_id"' in page  # what failedPayment carries
    unknown = {"kind": "filter", "c-0-field": "contact.properties.favourite_colour", "c-0-op": "equals"}
    refused = logged_in.post(url, {**unknown, "c-0-value": "red"})
    assert refused.status_code == 400 and draft.steps.count() == 3
    assert "Unknown field “contact.properties.favourite_colour”" in refused.content.decode()
    wrong_type = logged_in.post(
        url, {"kind": "filter", "c-0-field": "contact.subscribed", "c-0-op": "contains", "c-0-value": "x"}
    )
    assert wrong_type.status_code == 400 and "does not apply to" in html.unescape(wrong_type.content.decode())
    one_more = logged_in.post(
        url,
        {"kind": "filter", "c-0-field": "contact.first_name", "c-0-op": "starts_with", "builder": "add_rule:c"},
    )
    assert one_more.status_code == 200 and 'name="c-1-field"' in one_more.content.decode()
    assert 'value="starts_with" selected' in one_more.content.decode()  # the row typed is kept
    assert draft.steps.count() == 3  # adding a row saves nothing
    saved = logged_in.post(
        url,
        {
            "kind": "filter",
            **builder_post(
                "c",
                {
                    "match": "any",
                    "rules": [
                        {"field": "contact.first_name", "op": "starts_with", "value": "Ad"},
                        {"field": "event.amount", "op": "between", "value": "100", "value2": "500"},
                    ],
                },
            ),
            "c-2-field": "",  # an empty row is left out
        },
    )
    assert saved.status_code == 302
    step = main_line(draft)[-1]
    assert step.conditions == {
        "match": "any",
        "rules": [
            {"field": "contact.first_name", "op": "starts_with", "value": "Ad"},
            {"field": "event.amount", "op": "between", "value": "100", "value2": "500"},
        ],
    }
    page = logged_in.get(reverse("loops:step", args=[draft.pk, step.pk])).content.decode()
    assert 'value="Ad"' in page and 'value="500"' in page  # the saved rules, back in their rows


def test_a_branch_and_an_experiment_are_checked_before_they_are_saved(logged_in, draft):
    url = reverse("loops:step-new", args=[draft.pk])
    catch_all_first = paths_post([{"name": "All"}, {"name": "Pro"}])
    refused = logged_in.post(url, {"kind": "branch", **catch_all_first})
    assert refused.status_code == 400 and "Only the last path may be a catch-all." in refused.content.decode()
    unknown = paths_post(
        [
            {"name": "X", "conditions": {"rules": [{"field": "contact.nope", "op": "equals", "value": "1"}]}},
            {"name": "Y"},
        ]
    )
    refused = logged_in.post(url, {"kind": "branch", **unknown})
    assert refused.status_code == 400 and "Path 1: fix the marked rules." in refused.content.decode()
    assert "Unknown field “contact.nope”" in refused.content.decode()  # on its row
    uneven = paths_post([{"name": "A", "percent": 50}, {"name": "B", "percent": 40}])
    refused = logged_in.post(url, {"kind": "experiment", **uneven})
    assert refused.status_code == 400 and "adding up to 100" in refused.content.decode()
    not_a_number = logged_in.post(url, {"kind": "experiment", **paths_post([{"name": "A", "percent": "half"}] * 2)})
    assert not_a_number.status_code == 400 and "Variant 1: give it a whole percent" in not_a_number.content.decode()
    nul = paths_post([{"name": "A\x00", "percent": 50}, {"name": "B", "percent": 50}])
    refused = logged_in.post(url, {"kind": "experiment", **nul})
    assert refused.status_code == 400 and "Variant 1: a name cannot hold a NUL character." in refused.content.decode()
    assert draft.steps.count() == 3
    even = paths_post([{"name": "A", "percent": 50, "control": True}, {"name": "B", "percent": 50}])
    assert logged_in.post(url, {"kind": "experiment", **even}).status_code == 302
    assert main_line(draft)[-1].paths == [
        {"name": "A", "percent": 50, "control": True},
        {"name": "B", "percent": 50, "control": False},
    ]
    page = logged_in.get(reverse("loops:loop", args=[draft.pk])).content.decode()
    assert "Variant 1: A" in page and "Variant 2: B" in page
    assert page.count('aria-label="Add a step at the start of variant') == 2  # the main line ends at it
    assert 'aria-label="Add a step after step 4"' not in page  # nothing hangs after an experiment itself


def test_update_contact_offers_only_the_teams_lists(logged_in, team, other_team, draft):
    from contacts.services import mailing_list_create

    ours = mailing_list_create(team=team, name="Customers")
    theirs = mailing_list_create(team=other_team, name="Globex secret list")
    url = reverse("loops:step-new", args=[draft.pk])
    page = logged_in.get(url, {"kind": "update_contact"}).content.decode()
    assert "Customers" in page and "Globex secret list" not in page
    refused = logged_in.post(url, {"kind": "update_contact", "update_action": "join_list", "update_list": theirs.pk})
    assert refused.status_code == 400 and draft.steps.count() == 3
    saved = logged_in.post(url, {"kind": "update_contact", "update_action": "join_list", "update_list": ours.pk})
    assert saved.status_code == 302 and main_line(draft)[-1].update_list == ours


# --- duplicate, archive, delete, download and upload ---------------------------------------------


def test_duplicate_makes_a_draft_copy_with_a_unique_name(logged_in, team, make_loop):
    loop = make_loop(team)  # active
    response = logged_in.post(reverse("loops:loop-duplicate", args=[loop.pk]))
    copy = Loop.objects.exclude(pk=loop.pk).get(team=team)
    assert response.status_code == 302 and response["Location"] == reverse("loops:loop", args=[copy.pk])
    assert (copy.name, copy.status) == ("Stripe - Payment Failed (copy)", "draft")
    assert [s.kind for s in main_line(copy)] == [s.kind for s in main_line(loop)]
    logged_in.post(reverse("loops:loop-duplicate", args=[loop.pk]))
    assert Loop.objects.filter(team=team, name="Stripe - Payment Failed (copy) (2)").exists()


def test_archive_stops_the_runs_and_restore_makes_a_draft(run_tasks, logged_in, team, make_loop):
    from loops.models import LoopRun
    from loops.services import event_fire

    loop = make_loop(team)
    contact = Contact.objects.create(team=team, email="ada@example.com")
    run_tasks(event_fire, team=team, contact=contact, name="failedPayment", idempotency_key="evt_1")
    assert LoopRun.objects.get().status == "waiting"
    logged_in.post(reverse("loops:loop-status", args=[loop.pk]), {"action": "archive"})
    loop.refresh_from_db()
    run = LoopRun.objects.get()
    assert loop.status == "archived" and run.status == "stopped" and "archived" in run.history[-1]["what"]
    run_tasks(event_fire, team=team, contact=contact, name="failedPayment", idempotency_key="evt_2")
    assert LoopRun.objects.count() == 1  # an archived loop starts nobody
    logged_in.post(reverse("loops:loop-status", args=[loop.pk]), {"action": "restore"})
    loop.refresh_from_db()
    assert loop.status == "draft"


def test_delete_says_what_becomes_of_the_runs_and_keeps_the_emails(run_tasks, logged_in, team, make_loop):
    from loops.models import LoopRun
    from loops.services import event_fire

    loop = make_loop(team)
    contact = Contact.objects.create(team=team, email="ada@example.com")
    run_tasks(event_fire, team=team, contact=contact, name="failedPayment", idempotency_key="evt_1")
    confirm = logged_in.get(reverse("loops:loop-delete", args=[loop.pk])).content.decode()
    assert "1 run" in confirm and "1 contact still in it gets nothing more" in confirm
    assert Loop.objects.filter(pk=loop.pk).exists()  # asking is not deleting
    response = logged_in.post(reverse("loops:loop-delete", args=[loop.pk]), follow=True)
    assert "was deleted with its 3 steps and 1 runs" in response.content.decode()
    assert not Loop.objects.filter(pk=loop.pk).exists() and not LoopRun.objects.exists()
    assert EmailMessage.objects.filter(contact=contact, run=None).count() == 1


def test_download_and_upload_round_trip_and_a_bad_file_saves_nothing(logged_in, team, make_loop):
    from django.core.files.uploadedfile import SimpleUploadedFile

    loop = make_loop(team, activate=False)
    download = logged_in.get(reverse("loops:loop-download", args=[loop.pk]))
    assert download["Content-Disposition"] == 'attachment; filename="stripe-payment-failed.json"'
    spec = json.loads(download.content)
    upload = SimpleUploadedFile("loop.json", download.content, content_type="application/json")
    response = logged_in.post(reverse("loops:loop-upload"), {"file": upload})
    imported = Loop.objects.exclude(pk=loop.pk).get(team=team)
    assert response["Location"] == reverse("loops:loop", args=[imported.pk]) and imported.status == "draft"
    from loops.services import loop_export

    assert loop_export(loop=imported) == {**spec, "name": imported.name}
    broken = {**spec, "edges": [{"from": "n1", "to": "n9"}]}
    bad = SimpleUploadedFile("bad.json", json.dumps(broken).encode(), content_type="application/json")
    page = logged_in.post(reverse("loops:loop-upload"), {"file": bad}, follow=True).content.decode()
    assert "The loop was not created: edges[0]" in html.unescape(page)
    not_json = SimpleUploadedFile("x.json", b"{", content_type="application/json")
    assert "not JSON" in logged_in.post(reverse("loops:loop-upload"), {"file": not_json}, follow=True).content.decode()
    assert Loop.objects.filter(team=team).count() == 2


def test_the_runs_list_shows_who_is_where_by_status_and_step(run_tasks, logged_in, team, make_loop):
    from loops.services import event_fire

    loop = make_loop(team)
    first, wait, _ = main_line(loop)
    for n in range(3):
        contact = Contact.objects.create(team=team, email=f"c{n}@example.com")
        run_tasks(event_fire, team=team, contact=contact, name="failedPayment", idempotency_key=f"evt_{n}")
    other = Contact.objects.create(team=team, email="other-loop@example.com")
    make_loop(team, "stripe-new-customer")
    run_tasks(event_fire, team=team, contact=other, name="newStripeCustomer", idempotency_key="evt_other")
    url = reverse("loops:loop-runs", args=[loop.pk])
    page = logged_in.get(url, {"status": "waiting", "step": wait.pk}).content.decode()
    assert page.count('href="/audience/') >= 3 and "c0@example.com" in page and "for successfulPayment" in page
    assert "other-loop@example.com" not in page
    assert "No run matches." in logged_in.get(url, {"step": first.pk}).content.decode()  # nobody stays at an email
    assert "No run matches." in logged_in.get(url, {"status": "completed"}).content.decode()
    editor = logged_in.get(reverse("loops:loop", args=[loop.pk])).content.decode()
    assert "?status=waiting" in editor and "3 waiting" in editor and f"?step={wait.pk}" in editor
    assert "3 entered" in editor and "3 here now" in editor  # the wait step: three contacts in it


def test_email_steps_show_rendered_for_the_sample_contact_not_raw_liquid(logged_in, team, draft):
    first = main_line(draft)[0]
    LoopStep.objects.filter(pk=first.pk).update(
        subject="Hi {{ contact.first_name }}", body="**{{ event.amount_formatted }}** due"
    )
    page = logged_in.get(reverse("loops:loop", args=[draft.pk])).content.decode()
    assert "<strong>Subject:</strong> Hi Ada</p>" in page and "$25.00 due" in page
    summary = page.split(f'id="step-{first.pk}"')[1].split("<details>")[0]
    assert "{{" not in summary  # the source is still one click away, in <details>
    LoopStep.objects.filter(pk=first.pk).update(body="{{ contact.first_name | nosuchfilter }}")
    page = logged_in.get(reverse("loops:loop", args=[draft.pk])).content.decode()
    assert "This email cannot render" in page and "nosuchfilter" in page


def test_a_step_can_be_added_anywhere_and_a_path_with_steps_cannot_be_removed(logged_in, draft):
    first, wait, last = main_line(draft)
    url = reverse("loops:step-new", args=[draft.pk])
    logged_in.post(url + "?at=start", {**EMAIL, "at": "start", "subject": "Before all"})
    logged_in.post(url, {**EMAIL, "after": first.pk, "port": 0, "subject": "Between"})
    assert [s.subject or s.kind for s in main_line(draft)] == [
        "Before all",
        first.subject,
        "Between",
        "wait_event",
        last.subject,
    ]
    branch = paths_post(
        [
            {"name": "One", "conditions": {"rules": [{"field": "contact.email", "op": "contains", "value": "@"}]}},
            {"name": "Two"},
            {"name": "Three"},
        ]
    )
    refused = logged_in.post(url, {"kind": "branch", **branch})  # two catch-alls
    assert refused.status_code == 400
    branch["path-1-c-0-field"], branch["path-1-c-0-op"] = "contact.subscribed", "is_true"
    logged_in.post(url, {"kind": "branch", **branch})
    branch_step = main_line(draft)[-1]
    assert [path["name"] for path in branch_step.paths] == ["One", "Two", "Three"]
    logged_in.post(url, {**EMAIL, "after": branch_step.pk, "port": 2, "subject": "On path three"})
    assert LoopStep.objects.get(parent=branch_step, port=2).subject == "On path three"
    edit = reverse("loops:step", args=[draft.pk, branch_step.pk])
    form = logged_in.get(edit).content.decode()
    assert ">Remove path 3<" not in form  # it has a step under it
    two_paths = {key: value for key, value in branch.items() if not key.startswith("path-2-")}
    refused = logged_in.post(edit, two_paths)
    assert refused.status_code == 400 and "Path 3 has steps under it" in refused.content.decode()
    removing = logged_in.post(edit, {**branch, "builder": "remove_path:2"})
    assert removing.status_code == 200 and 'name="path-2-name"' in removing.content.decode()  # not removed
    LoopStep.objects.filter(parent=branch_step).delete()
    assert ">Remove path 3<" in logged_in.get(edit).content.decode()
    removed = logged_in.post(edit, {**branch, "builder": "remove_path:2"}).content.decode()
    assert 'name="path-2-name"' not in removed and ">Remove path" not in removed  # a branch keeps two
    added = logged_in.post(edit, {**two_paths, "builder": "add_path:"}).content.decode()
    assert 'name="path-2-name" id="id_path-2-name" value="Path 3"' in added
    assert LoopStep.objects.get(pk=branch_step.pk).paths == branch_step.paths  # nothing saved by the buttons
    page = logged_in.get(reverse("loops:loop", args=[draft.pk])).content.decode()
    assert 'aria-label="Add a step at the start"' in page and 'aria-label="Add a step after step 1"' in page
    assert 'aria-label="Add a step at the start of path 2"' in page


def test_an_archived_loop_is_read_only_until_it_is_restored(logged_in, draft):
    first = main_line(draft)[0]
    loop_archive(loop=draft)
    page = logged_in.get(reverse("loops:loop", args=[draft.pk])).content.decode()
    assert "This loop is archived" in page and "Save trigger" not in page and "+ Add" not in page
    before = [(step.pk, step.subject, step.parent_id) for step in main_line(draft)]
    status = reverse("loops:loop-status", args=[draft.pk])
    for url, data in [
        (status, {"action": "activate"}),
        (status, {"action": "pause"}),
        (reverse("loops:loop", args=[draft.pk]), {"name": "Renamed", "trigger": "event", "trigger_event_name": "x"}),
        (reverse("loops:step-new", args=[draft.pk]), {**EMAIL, "at": "start"}),
        (reverse("loops:step", args=[draft.pk, first.pk]), {**EMAIL, "subject": "Changed"}),
        (reverse("loops:step-move", args=[draft.pk, first.pk]), {"direction": "down"}),
        (reverse("loops:step-delete", args=[draft.pk, first.pk]), {}),
    ]:
        response = logged_in.post(url, data, follow=True)
        assert "is archived: restore it as a draft to change it." in response.content.decode(), url
    draft.refresh_from_db()
    assert draft.status == Loop.Status.ARCHIVED and draft.name != "Renamed"
    assert [(step.pk, step.subject, step.parent_id) for step in main_line(draft)] == before
    logged_in.post(status, {"action": "restore"})
    logged_in.post(status, {"action": "activate"})
    assert Loop.objects.get(pk=draft.pk).status == Loop.Status.ACTIVE


@pytest.mark.parametrize(
    ("url_name", "data", "field_message"),
    [
        ("loops:step-new", {"kind": "update_contact"}, "Choose what to change."),
        ("loops:loop", {"name": "X", "trigger": "event", "trigger_event_name": "bad name!"}, "An event name is up to"),
        (
            "loops:loop",
            {"name": "X", "trigger": "list_added", "trigger_list": "999999", "frequency": "every"},
            "Select a valid choice.",
        ),
    ],
)
def test_a_refused_field_says_why_once(logged_in, draft, url_name, data, field_message):
    response = logged_in.post(reverse(url_name, args=[draft.pk]), data)
    errors = re.findall(r'<p class="error">([^<]+)</p>', html.unescape(response.content.decode()))
    assert response.status_code == 400 and len(errors) == 1 and errors[0].startswith(field_message), errors


def test_a_blank_frequency_keeps_the_loops(logged_in, draft):
    data = {"name": "X", "trigger": "event", "trigger_event_name": "paid", "frequency": ""}
    assert logged_in.post(reverse("loops:loop", args=[draft.pk]), data).status_code == 302
    assert Loop.objects.get(pk=draft.pk).frequency == draft.frequency


@pytest.mark.parametrize("field", ["contact.created_at", "contact.stripe_customer_id"])
def test_a_field_that_never_reports_a_change_cannot_be_watched(logged_in, draft, field):
    data = {"name": "X", "trigger": "contact_updated", "trigger_field": field, "frequency": "every"}
    response = logged_in.post(reverse("loops:loop", args=[draft.pk]), data)
    assert response.status_code == 400 and f"“{field}” never changes once set" in response.content.decode()
    assert Loop.objects.get(pk=draft.pk).trigger == Loop.Trigger.EVENT
    data["trigger_field"] = "contact.user_group"
    assert logged_in.post(reverse("loops:loop", args=[draft.pk]), data).status_code == 302


def test_an_upload_over_the_limit_is_refused_as_it_streams_in(logged_in, user, team):
    far = b"x" * (2 * MAX_SPEC_BYTES)  # its length alone says so: refused before it is read
    response = logged_in.post(reverse("loops:loop-upload"), {"file": SimpleUploadedFile("far.json", far)})
    assert response.status_code == 413 and "at most 1 MB" in response.content.decode()
    assert not hasattr(response.wsgi_request, "upload_limit")
    big = b'{"name": "' + b"x" * (MAX_SPEC_BYTES + 10_000) + b'"}'  # just over: read up to the limit
    response = logged_in.post(reverse("loops:loop-upload"), {"file": SimpleUploadedFile("big.json", big)})
    assert response.status_code == 302 and not Loop.objects.filter(team=team).exists()
    request = response.wsgi_request
    assert request.upload_limit.exceeded and not request.FILES  # no file was made of it
    assert request.upload_limit.received <= MAX_SPEC_BYTES + 256 * 1024  # read up to the limit, then dropped
    page = html.unescape(logged_in.get(reverse("loops:loops")).content.decode())
    assert f"A loop's JSON is at most {MAX_SPEC_BYTES:,} bytes; this file is larger." in page
    csrf_client = Client(enforce_csrf_checks=True)  # the check the middleware would make is made
    csrf_client.force_login(user)
    small = SimpleUploadedFile("loop.json", b"{}")
    assert csrf_client.post(reverse("loops:loop-upload"), {"file": small}).status_code == 403


@pytest.mark.parametrize("percent", ["²", "٥٠", "-1", "1e2", " "])
def test_a_variant_percent_that_is_not_plain_digits_is_refused(logged_in, draft, percent):
    data = paths_post([{"name": "A", "percent": percent}, {"name": "B", "percent": "50"}])
    response = logged_in.post(reverse("loops:step-new", args=[draft.pk]), {"kind": "experiment", **data})
    assert response.status_code == 400 and "Variant 1: give it a whole percent" in response.content.decode()


def test_a_new_path_goes_before_the_catch_all_and_a_new_variant_starts_at_zero(logged_in, draft):
    url = reverse("loops:step-new", args=[draft.pk])
    rule = {"rules": [{"field": "contact.subscribed", "op": "is_true"}]}
    branch = paths_post([{"name": "Subscribed", "conditions": rule}, {"name": "Everyone else"}])
    page = logged_in.post(url, {"kind": "branch", **branch, "builder": "add_path:"}).content.decode()
    names = re.findall(r'name="path-(\d)-name" id="id_path-\d-name" value="([^"]*)"', page)
    assert names == [("0", "Subscribed"), ("1", "Path 2"), ("2", "Everyone else")]
    assert 'name="path-1-c-0-field"' in page and 'name="path-2-c-0-field"' in page
    variants = paths_post([{"name": "A", "percent": 50}, {"name": "B", "percent": 50}])
    page = logged_in.post(url, {"kind": "experiment", **variants, "builder": "add_path:"}).content.decode()
    assert 'id="id_path-2-name" value="Variant 3"' in page and 'id="id_path-2-percent" value="0"' in page


def test_summaries_name_fields_and_lists_and_between_reads_low_to_high(logged_in, team, draft):
    newsletter = MailingList.objects.create(team=team, name="Newsletter")
    url = reverse("loops:step-new", args=[draft.pk])
    rules = {
        "match": "all",
        "rules": [
            {"field": "contact.properties.planAmount", "op": "between", "value": "10", "value2": "5"},
            {"field": "lists", "op": "in_list", "value": str(newsletter.pk)},
        ],
    }
    assert logged_in.post(url, {"kind": "filter", **builder_post("c", rules)}).status_code == 302
    assert main_line(draft)[-1].conditions["rules"][0] == {
        "field": "contact.properties.planAmount", "op": "between", "value": "5", "value2": "10"
    }  # fmt: skip
    page = html.unescape(logged_in.get(reverse("loops:loop", args=[draft.pk])).content.decode())
    assert "Continue only if Plan amount between 5 and 10 and on the list “Newsletter”." in page


def test_an_archived_loops_step_pages_send_back_to_the_loop(logged_in, draft):
    first = main_line(draft)[0]
    loop_archive(loop=draft)
    for url in (
        reverse("loops:step", args=[draft.pk, first.pk]),
        reverse("loops:step-new", args=[draft.pk]) + "?kind=email",
        reverse("loops:step-delete", args=[draft.pk, first.pk]),
    ):
        response = logged_in.get(url)
        assert response.status_code == 302 and response.url == reverse("loops:loop", args=[draft.pk]), url
    page = logged_in.get(reverse("loops:loop", args=[draft.pk])).content.decode()
    assert re.search(r'<input type="text" name="name" value="Stripe - Payment Failed"[^>]* disabled', page)


def test_the_update_contact_form_marks_each_field_with_its_changes(logged_in, team, draft):
    page = logged_in.get(reverse("loops:step-new", args=[draft.pk]), {"kind": "update_contact"}).content.decode()
    assert 'data-for-action="set_property clear_property"' in page and 'data-for-action="join_list leave_list"' in page
    assert '<datalist id="property-keys">' in page and '<option value="planName">' in page
