"""The loop editor: trigger, steps (add, edit, remove, reorder), live preview and test email."""

import html

import pytest
from django.test import Client
from django.urls import reverse

from contacts.models import Contact
from loops.models import EmailMessage, Event, Loop, LoopStep

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


def positions(loop):
    return list(loop.steps.order_by("position").values_list("kind", "position"))


# --- trigger -------------------------------------------------------------------------------------


def test_saves_name_and_trigger(logged_in, draft):
    response = logged_in.post(
        reverse("loops:loop", args=[draft.pk]),
        {"name": "Dunning", "trigger": "event", "trigger_event_name": "paymentFailed"},
    )
    assert response.status_code == 302
    draft.refresh_from_db()
    assert (draft.name, draft.trigger_event_name) == ("Dunning", "paymentFailed")


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
    assert positions(draft) == [("email", 1), ("wait_event", 2), ("email", 3), ("email", 4)]
    assert draft.steps.get(position=4).subject == "Hi {{ contact.first_name }}"


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
    timer = draft.steps.get(position=4)
    assert (timer.kind, timer.delay_value, timer.delay_unit) == ("timer", 2, "hours")


def test_an_unknown_kind_is_404(logged_in, draft):
    assert logged_in.get(reverse("loops:step-new", args=[draft.pk]), {"kind": "webhook"}).status_code == 404


def test_edits_a_step(logged_in, draft):
    step = draft.steps.get(position=1)
    page = logged_in.get(reverse("loops:step", args=[draft.pk, step.pk])).content.decode()
    assert "Step 1: Send email" in page and "Send a test to me" in page
    logged_in.post(reverse("loops:step", args=[draft.pk, step.pk]), {**EMAIL, "subject": "New subject"})
    step.refresh_from_db()
    assert step.subject == "New subject"


def test_an_active_loop_takes_content_edits_but_not_structure(logged_in, team, make_loop):
    loop = make_loop(team)  # active
    first = loop.steps.get(position=1)
    logged_in.post(reverse("loops:step", args=[loop.pk, first.pk]), {**EMAIL, "subject": "Fixed a typo"})
    first.refresh_from_db()
    assert first.subject == "Fixed a typo"
    before = positions(loop)
    logged_in.post(reverse("loops:step-new", args=[loop.pk]), EMAIL)
    logged_in.post(reverse("loops:step-move", args=[loop.pk, first.pk]), {"direction": "down"})
    response = logged_in.post(reverse("loops:step-delete", args=[loop.pk, first.pk]), follow=True)
    assert positions(loop) == before
    assert "Pause the loop to add, remove or reorder steps" in response.content.decode()


def test_reorders_steps(logged_in, draft):
    first, wait, last = draft.steps.order_by("position")
    logged_in.post(reverse("loops:step-move", args=[draft.pk, last.pk]), {"direction": "up"})
    assert list(draft.steps.order_by("position").values_list("pk", flat=True)) == [first.pk, last.pk, wait.pk]
    logged_in.post(reverse("loops:step-move", args=[draft.pk, first.pk]), {"direction": "up"})  # already first
    assert list(draft.steps.order_by("position").values_list("pk", flat=True)) == [first.pk, last.pk, wait.pk]
    logged_in.post(reverse("loops:step-move", args=[draft.pk, first.pk]), {"direction": "down"})
    assert list(draft.steps.order_by("position").values_list("pk", flat=True)) == [last.pk, first.pk, wait.pk]
    assert positions(draft) == [("email", 1), ("email", 2), ("wait_event", 3)]


def test_removes_a_step_after_confirming_and_closes_the_gap(logged_in, draft):
    first, wait, last = draft.steps.order_by("position")
    confirm = logged_in.get(reverse("loops:step-delete", args=[draft.pk, wait.pk]))
    assert "Remove step 2 (Wait for event)?" in confirm.content.decode()
    assert draft.steps.count() == 3  # asking is not removing
    logged_in.post(reverse("loops:step-delete", args=[draft.pk, wait.pk]))
    assert list(draft.steps.order_by("position").values_list("pk", "position")) == [(first.pk, 1), (last.pk, 2)]


def test_removing_a_step_keeps_the_emails_it_sent(logged_in, team, draft):
    contact = Contact.objects.create(team=team, email="ada@example.com")
    step = draft.steps.get(position=1)
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
    step = draft.steps.get(position=1)
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
    step = draft.steps.get(position=1)
    response = logged_in.post(
        reverse("loops:step-test", args=[draft.pk]), {**EMAIL, "step": step.pk, "subject": "Unsaved subject"}
    )
    body = response.content.decode()
    assert "Test email sent to" in body and 'value="Unsaved subject"' in body and "Step 1: Send email" in body
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
    ],
)
def test_another_teams_user_gets_404(client, outsider, draft, name, method, with_step, smtp_server):
    client.force_login(outsider)
    step = draft.steps.get(position=1)
    args = [draft.pk, step.pk] if with_step else [draft.pk]
    data = {**EMAIL, "name": "Hijacked", "trigger": "event", "trigger_event_name": "x", "direction": "down"}
    url = reverse(name, args=args) + ("?kind=email" if name == "loops:step-new" else "")
    assert getattr(client, method)(url, data).status_code == 404
    draft.refresh_from_db()
    assert draft.name == "Stripe - Payment Failed" and positions(draft)[0] == ("email", 1)
    assert LoopStep.objects.filter(loop=draft).count() == 3 and smtp_server.messages == []


def test_editor_forms_need_csrf(user, draft):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(user)
    step = draft.steps.get(position=1)
    for url in (
        reverse("loops:loop", args=[draft.pk]),
        reverse("loops:step", args=[draft.pk, step.pk]),
        reverse("loops:step-move", args=[draft.pk, step.pk]),
        reverse("loops:step-test", args=[draft.pk]),
    ):
        assert csrf_client.post(url, {**EMAIL, "direction": "down"}).status_code == 403
    assert Loop.objects.get(pk=draft.pk).steps.get(position=1).pk == step.pk


# --- runs in progress keep their place ------------------------------------------------------------


def _run_at(loop, contact, position, status="waiting", **extra):
    from loops.models import LoopRun

    return LoopRun.objects.create(
        team_id=loop.team_id, loop=loop, contact=contact, position=position, status=status, **extra
    )


@pytest.fixture
def paused(team, make_loop):
    from loops.services import loop_pause

    loop = make_loop(team)  # email, wait for successfulPayment, email
    loop_pause(loop=loop)
    return loop


def test_removing_a_step_keeps_runs_at_their_step(logged_in, team, paused):
    from django.utils import timezone

    contacts = [Contact.objects.create(team=team, email=f"c{i}@example.com") for i in range(3)]
    until = timezone.now() + timezone.timedelta(days=3)
    waiting = _run_at(paused, contacts[0], 2, wait_until=until, waiting_for="successfulPayment")
    before = _run_at(paused, contacts[1], 1, status="active")
    after = _run_at(paused, contacts[2], 3, status="active")
    first = paused.steps.get(position=1)
    logged_in.post(reverse("loops:step-delete", args=[paused.pk, first.pk]))
    for run in (waiting, before, after):
        run.refresh_from_db()
    assert (waiting.position, waiting.status, waiting.wait_until) == (1, "waiting", until)  # the same wait step
    assert after.position == 2  # the same last email
    assert before.position == 1  # its email is gone: it goes on with what came next
    wait_step = paused.steps.get(position=1)
    logged_in.post(reverse("loops:step-delete", args=[paused.pk, wait_step.pk]))
    waiting.refresh_from_db()
    assert (waiting.position, waiting.status, waiting.wait_until, waiting.waiting_for) == (1, "active", None, "")


def test_a_move_that_would_skip_a_step_for_a_run_is_refused(logged_in, team, paused):
    contact = Contact.objects.create(team=team, email="c@example.com")
    run = _run_at(paused, contact, 2)  # sent email 1, waiting in step 2
    first, wait, last = paused.steps.order_by("position")
    response = logged_in.post(
        reverse("loops:step-move", args=[paused.pk, first.pk]), {"direction": "down"}, follow=True
    )
    assert "part-way through these two steps" in response.content.decode()
    assert list(paused.steps.order_by("position").values_list("pk", flat=True)) == [first.pk, wait.pk, last.pk]
    logged_in.post(reverse("loops:step-move", args=[paused.pk, last.pk]), {"direction": "up"})  # step 2 waits
    assert list(paused.steps.order_by("position").values_list("pk", flat=True)) == [first.pk, wait.pk, last.pk]
    run.delete()
    logged_in.post(reverse("loops:step-move", args=[paused.pk, last.pk]), {"direction": "up"})
    assert list(paused.steps.order_by("position").values_list("pk", flat=True)) == [first.pk, last.pk, wait.pk]


def test_a_timer_waits_at_most_a_year(logged_in, draft):
    url = reverse("loops:step-new", args=[draft.pk])
    refused = logged_in.post(url, {"kind": "timer", "delay_value": "366", "delay_unit": "days"})
    assert refused.status_code == 400 and "at most a year" in refused.content.decode()
    assert logged_in.post(url, {"kind": "timer", "delay_value": "8760", "delay_unit": "hours"}).status_code == 302
