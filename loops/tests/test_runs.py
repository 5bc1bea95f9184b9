"""Loops and their runs: enrolment, steps, waits and the seeded templates."""

from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone

from conftest import chain_steps, main_line
from contacts.models import Contact
from contacts.services import contact_save, contact_sync, contact_upsert
from loops.models import EmailMessage, Loop, LoopRun, LoopStep, LoopTemplate
from loops.seeding import templates_seed
from loops.services import event_fire, loop_activate, loop_pause
from loops.services.runs import runs_advance_due
from loops.tracking import html_for_viewing

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(team):
    return contact_sync(team=team, email="ada@example.com", full_name="Ada Lovelace").contact


def fire(run_tasks, contact, name, key="", **properties):
    return run_tasks(
        event_fire, team=contact.team, contact=contact, name=name, properties=properties, idempotency_key=key
    )


def test_templates_are_seeded_once_even_when_seeding_runs_again():
    templates_seed(LoopTemplate)
    templates_seed(LoopTemplate)
    names = list(LoopTemplate.objects.values_list("name", flat=True))
    assert names == [
        "Stripe - New Customer",
        "Stripe - Payment Successful",
        "Stripe - Payment Failed",
        "Stripe - Upcoming Invoice",
        "Stripe - Trial Ending",
        "Stripe - Subscription Canceled",
        "Stripe - Payment Action Required",
        "Stripe - Plan Changed",
    ]
    triggers = {template.slug: template.trigger_event_name for template in LoopTemplate.objects.all()}
    assert triggers == {
        "stripe-new-customer": "newStripeCustomer",
        "stripe-payment-successful": "successfulPayment",
        "stripe-payment-failed": "failedPayment",
        "stripe-upcoming-invoice": "upcomingInvoice",
        "stripe-trial-ending": "trialEnding",
        "stripe-subscription-canceled": "subscriptionCanceled",
        "stripe-payment-action-required": "paymentActionRequired",
        "stripe-plan-changed": "planChanged",
    }


def test_every_template_step_is_valid(team, make_loop):
    for template in LoopTemplate.objects.all():
        loop = make_loop(team, template.slug)
        assert loop.status == "active"


def test_copy_from_template_is_a_draft_with_the_steps(team, make_loop):
    loop = make_loop(team, activate=False)
    assert (loop.status, loop.trigger, loop.trigger_event_name) == ("draft", "event", "failedPayment")
    assert [step.kind for step in main_line(loop)] == ["email", "wait_event", "email"]
    assert (loop.frequency, loop.frequency_key) == ("per_key", "invoice_id")
    assert all(step.team_id == team.id for step in loop.steps.all())


def test_activation_says_what_is_missing(team):
    loop = Loop.objects.create(team=team, name="Empty")
    with pytest.raises(ValidationError) as info:
        loop_activate(loop=loop)
    message = info.value.messages[0]
    assert (
        "Choose the event that triggers this loop." in message
        and "Add at least one step that sends an email" in message
    )
    loop.refresh_from_db()
    assert loop.status == "draft"


def test_activation_refuses_a_broken_template(team, make_loop):
    loop = make_loop(team, activate=False)
    LoopStep.objects.filter(pk=main_line(loop)[0].pk).update(body="Hi {{ contact.first_name ")
    with pytest.raises(ValidationError, match="Step 1 .*line 1"):
        loop_activate(loop=loop)


def test_event_enrols_every_matching_active_loop_once_per_event(run_tasks, team, ada, make_loop, mailoutbox):
    first, second = make_loop(team), make_loop(team)
    make_loop(team, "stripe-payment-successful")
    fire(run_tasks, ada, "failedPayment", key="evt_1", amount_formatted="$5.00")
    fire(run_tasks, ada, "failedPayment", key="evt_1")  # Stripe's duplicate
    assert set(LoopRun.objects.values_list("loop_id", flat=True)) == {first.id, second.id}
    assert len(mailoutbox) == 2
    fire(run_tasks, ada, "failedPayment", key="evt_2")  # a new failure: a new run
    assert LoopRun.objects.count() == 4


def test_paused_and_draft_loops_enrol_nobody(run_tasks, team, ada, make_loop, mailoutbox):
    make_loop(team, activate=False)
    loop_pause(loop=make_loop(team))
    fire(run_tasks, ada, "failedPayment", key="evt_1")
    assert not LoopRun.objects.exists() and mailoutbox == []


def test_contact_of_team_b_never_enters_team_a_loops(run_tasks, team, other_team, make_loop, mailoutbox):
    make_loop(team)
    theirs = contact_sync(team=other_team, email="ada@example.com").contact
    fire(run_tasks, theirs, "failedPayment", key="evt_1")
    assert not LoopRun.objects.exists() and mailoutbox == []


def test_email_step_sends_rendered_email_with_unsubscribe_headers(run_tasks, team, ada, make_loop, mailoutbox):
    make_loop(team)
    fire(
        run_tasks,
        ada,
        "failedPayment",
        key="evt_1",
        amount_formatted="$249.00",
        hosted_invoice_url="https://invoice.stripe.com/i/1",
    )
    [email] = mailoutbox
    assert email.to == ["ada@example.com"]
    assert email.subject == "Your payment of $249.00 didn't go through"
    assert "Hi Ada," in email.body and "$249.00" in email.body
    html = email.alternatives[0][0]
    # The button goes through the click redirect (loops.tracking) to the invoice.
    assert "Hi Ada," in html and 'href="https://invoice.stripe.com/i/1"' in html_for_viewing(html)
    assert 'href="https://invoice.stripe.com/i/1"' not in html
    assert email.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert email.extra_headers["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/unsubscribe/")
    message = EmailMessage.objects.get()
    first, wait, _ = main_line(message.step.loop)
    assert (message.status, message.contact, message.step) == ("sent", ada, first)
    run = LoopRun.objects.get()
    assert (run.status, run.step, run.waiting_for) == ("waiting", wait, "successfulPayment")


def test_unsubscribed_contact_gets_no_email_and_it_is_recorded(run_tasks, team, ada, make_loop, mailoutbox):
    Contact.objects.filter(pk=ada.pk).update(subscribed=False)
    ada.refresh_from_db()
    make_loop(team, "stripe-new-customer")
    fire(run_tasks, ada, "newStripeCustomer")
    assert mailoutbox == []
    message = EmailMessage.objects.get()
    assert message.status == "skipped" and "unsubscribed" in message.error
    assert LoopRun.objects.get().status == "completed"


def test_dunning_payment_within_the_wait_stops_the_reminder(run_tasks, team, ada, make_loop, mailoutbox):
    make_loop(team)
    fire(run_tasks, ada, "failedPayment", key="evt_fail")
    with time_machine.travel(timezone.now() + timedelta(days=1)):
        fire(run_tasks, ada, "successfulPayment", key="evt_paid")
    with time_machine.travel(timezone.now() + timedelta(days=4)):
        run_tasks(runs_advance_due)
    assert len(mailoutbox) == 1
    run = LoopRun.objects.get()
    assert run.status == "stopped"
    assert "successfulPayment arrived; stopped" in run.history[-1]["what"]


def test_dunning_without_payment_sends_the_reminder_after_the_timeout(run_tasks, team, ada, make_loop, mailoutbox):
    make_loop(team)
    fire(run_tasks, ada, "failedPayment", key="evt_fail", amount_formatted="$19.00")
    with time_machine.travel(timezone.now() + timedelta(days=2, hours=23)):
        assert run_tasks(runs_advance_due) == 0  # not due yet
    assert len(mailoutbox) == 1
    with time_machine.travel(timezone.now() + timedelta(days=3, minutes=1)):
        assert run_tasks(runs_advance_due) == 1
    assert [m.subject for m in mailoutbox] == [
        "Your payment of $19.00 didn't go through",
        "Reminder: your payment of $19.00 is still due",
    ]
    assert LoopRun.objects.get().status == "completed"


def test_editing_an_active_loop_reaches_runs_not_yet_past_the_step(run_tasks, team, ada, make_loop, mailoutbox):
    loop = make_loop(team)
    fire(run_tasks, ada, "failedPayment", key="evt_fail")
    first, _, reminder = main_line(loop)
    LoopStep.objects.filter(pk=first.pk).update(subject="Changed first email")  # already passed
    LoopStep.objects.filter(pk=reminder.pk).update(subject="Changed reminder")  # not yet reached
    with time_machine.travel(timezone.now() + timedelta(days=3, minutes=1)):
        run_tasks(runs_advance_due)
    assert [m.subject for m in mailoutbox][1] == "Changed reminder"
    assert "Changed first email" not in [m.subject for m in mailoutbox]


def test_timer_waits_then_continues(run_tasks, team, ada, mailoutbox):
    loop = Loop.objects.create(team=team, name="Later", trigger_event_name="signedUp")
    chain_steps(
        loop,
        LoopStep(kind="timer", delay_value=2, delay_unit="hours"),
        LoopStep(kind="email", subject="Two hours later", body="Hi"),
    )
    loop_activate(loop=loop)
    fire(run_tasks, ada, "signedUp")
    assert mailoutbox == [] and LoopRun.objects.get().status == "waiting"
    with time_machine.travel(timezone.now() + timedelta(hours=2, seconds=1)):
        run_tasks(runs_advance_due)
    assert [m.subject for m in mailoutbox] == ["Two hours later"]


@pytest.mark.parametrize(
    ("field", "operator", "value", "enters"),
    [
        ("contact.first_name", "equals", "ada", True),
        ("contact.first_name", "not_equals", "Ada", False),
        ("contact.email", "contains", "@example.", True),
        ("contact.properties.plan", "is_not_empty", "", True),
        ("contact.properties.plan", "equals", "pro", True),
        ("contact.user_group", "is_not_empty", "", False),
        ("contact.user_group", "is_empty", "", True),
        ("contact.properties.plan", "equals", "free", False),
    ],
)
def test_audience_filter(run_tasks, team, ada, mailoutbox, field, operator, value, enters):
    Contact.objects.filter(pk=ada.pk).update(properties={"plan": "Pro"})
    loop = Loop.objects.create(team=team, name="Filtered", trigger_event_name="go")
    rule = {"field": field, "op": operator, "value": value}
    chain_steps(
        loop,
        LoopStep(kind="filter", conditions={"match": "all", "rules": [rule]}),
        LoopStep(kind="email", subject="In", body="Hi"),
    )
    loop_activate(loop=loop)
    fire(run_tasks, ada, "go")
    assert len(mailoutbox) == (1 if enters else 0)
    assert LoopRun.objects.get().status == ("completed" if enters else "filtered_out")


def test_new_contact_enrols_in_contact_added_loops_once(run_tasks, team, mailoutbox):
    loop = Loop.objects.create(team=team, name="Welcome", trigger="contact_added")
    chain_steps(loop, LoopStep(kind="email", subject="Welcome {{ contact.first_name }}", body="Hello"))
    loop_activate(loop=loop)
    run_tasks(contact_sync, team=team, email="new@example.com", full_name="Grace Hopper")
    run_tasks(contact_sync, team=team, email="new@example.com", full_name="Grace Hopper")
    assert [m.subject for m in mailoutbox] == ["Welcome Grace"]
    assert LoopRun.objects.filter(loop=loop).count() == 1


def test_step_with_an_error_fails_the_run_with_the_reason(run_tasks, team, ada, make_loop):
    loop = make_loop(team)
    LoopStep.objects.filter(pk=main_line(loop)[0].pk).update(body="{{ contact.first_name | nosuchfilter }}")
    fire(run_tasks, ada, "failedPayment", key="evt_1")
    run = LoopRun.objects.get()
    assert run.status == "failed" and "nosuchfilter" in run.last_error


CREATORS = {
    "stripe": lambda team, email: contact_sync(team=team, email=email),
    "app": lambda team, email: contact_save(team=team, contact=Contact(email=email), properties={}),
    "api": lambda team, email: contact_upsert(team=team, email=email),
}


@pytest.mark.parametrize("source", CREATORS)
def test_contact_created_by_any_means_enrols_in_contact_added_loops(run_tasks, team, mailoutbox, source):
    loop = Loop.objects.create(team=team, name="Welcome", trigger="contact_added")
    chain_steps(loop, LoopStep(kind="email", subject="Welcome", body="Hello"))
    loop_activate(loop=loop)
    run_tasks(CREATORS[source], team, "typed@example.com")
    run_tasks(contact_sync, team=team, email="typed@example.com")  # found, not created: no second run
    assert [m.to for m in mailoutbox] == [["typed@example.com"]]


def test_dunning_payment_processed_before_the_older_failure_still_stops_the_reminder(
    run_tasks, team, ada, make_loop, mailoutbox
):
    """Stripe retried the failure (t1) after the payment (t2) had been processed."""
    make_loop(team)
    t1 = timezone.now() - timedelta(hours=2)
    run_tasks(
        event_fire,
        team=team,
        contact=ada,
        name="successfulPayment",
        idempotency_key="evt_paid",
        occurred_at=t1 + timedelta(hours=1),
    )
    run_tasks(event_fire, team=team, contact=ada, name="failedPayment", idempotency_key="evt_fail", occurred_at=t1)
    with time_machine.travel(timezone.now() + timedelta(days=4)):
        run_tasks(runs_advance_due)
    assert len(mailoutbox) == 1  # the failure notice went out; the reminder did not
    assert LoopRun.objects.get().status == "stopped"


def test_a_payment_older_than_the_failure_does_not_stop_the_reminder(run_tasks, team, ada, make_loop, mailoutbox):
    make_loop(team)
    now = timezone.now()
    run_tasks(
        event_fire,
        team=team,
        contact=ada,
        name="successfulPayment",
        idempotency_key="evt_old_paid",
        occurred_at=now - timedelta(days=30),
    )
    run_tasks(event_fire, team=team, contact=ada, name="failedPayment", idempotency_key="evt_fail", occurred_at=now)
    with time_machine.travel(now + timedelta(days=3, minutes=1)):
        run_tasks(runs_advance_due)
    assert len(mailoutbox) == 2


def test_an_event_committed_while_a_run_was_advanced_is_seen_after_it_starts_waiting(run_tasks, team, ada, make_loop):
    from loops.models import Event
    from loops.services.runs import _recheck_waits

    make_loop(team)
    fire(run_tasks, ada, "failedPayment", key="evt_fail")
    run = LoopRun.objects.get()
    assert run.status == "waiting" and run.next_due_at > timezone.now() + timedelta(days=2)
    Event.objects.create(team=team, contact=ada, name="successfulPayment")  # its wake-up saw no waiting run
    run_tasks(_recheck_waits, [run])
    run.refresh_from_db()
    assert run.status == "stopped"
