"""Dunning: Stripe retries a failed invoice up to four times. The "Stripe - Payment Failed" template runs once per
invoice (frequency: once per key, `invoice_id`), so one unpaid invoice sends one first email, however many
times it fails, and nothing after it is paid. Signed webhooks, the drains, and time moved as Stripe's retries
would move it."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from conftest import fixture_text
from loops.models import EmailMessage, LoopRun
from loops.services import emails_drain, runs_drain
from webhooks.services import processing

pytestmark = pytest.mark.django_db

FIRST = "Your payment of $249.00 didn't go through"
REMINDER = "Reminder: your payment of $249.00 is still due"


def _failed(attempt: int, at) -> str:
    event = json.loads(fixture_text("pay/invoice.payment_failed.json"))  # in_1234, customer@example.org, live
    event["id"], event["created"] = f"evt_fail_{attempt}", int(at.timestamp())
    event["data"]["object"]["attempt_count"] = attempt
    return json.dumps(event)


def _paid(at) -> str:
    failed = json.loads(fixture_text("pay/invoice.payment_failed.json"))
    event = json.loads(fixture_text("pay/invoice.paid.json"))
    invoice = {**event["data"]["object"]}
    for key in ("id", "customer", "customer_email", "customer_name", "livemode", "currency", "amount_due"):
        invoice[key] = failed["data"]["object"].get(key)
    invoice.update(amount_paid=invoice["amount_due"], status="paid", paid=True)
    event.update(id="evt_paid", created=int(at.timestamp()), livemode=True, data={"object": invoice})
    return json.dumps(event)


def _work() -> None:
    """What the workers would do now: process the deliveries, advance the runs due, send the emails."""
    for _ in range(3):
        processing.deliveries_drain(budget_seconds=5)
        runs_drain(budget_seconds=5)
        emails_drain(budget_seconds=5)


# Stripe's retry schedule for a failed invoice (days after the first failure), then the day it is paid.
RETRIES_THEN_PAID = [
    pytest.param([0, 3, 8, 15], 16, id="four failures, paid after the reminder"),
    pytest.param([0, 1, 2, 2.5], 2.75, id="four failures, paid within the wait"),
]


@pytest.mark.parametrize(("failures", "paid_on"), RETRIES_THEN_PAID)
def test_one_invoice_failing_four_times_then_paid_is_one_run_one_first_email_and_nothing_after_the_payment(
    team, make_endpoint, make_loop, post_webhook, mailoutbox, failures, paid_on
):
    endpoint = make_endpoint(
        team, triggers={"invoice.payment_failed": "failedPayment", "invoice.paid": "successfulPayment"}
    )
    loop = make_loop(team, "stripe-payment-failed")
    start = timezone.now()
    sent_at: dict[str, list] = {}
    for attempt, day in enumerate(failures, start=1):
        at = start + timedelta(days=day)
        with time_machine.travel(at, tick=False):
            assert post_webhook(endpoint, _failed(attempt, at)).json() == {"status": "queued"}
            _work()
            for message in mailoutbox[len(sum(sent_at.values(), [])) :]:
                sent_at.setdefault(message.subject, []).append(at)
    paid = start + timedelta(days=paid_on)
    with time_machine.travel(paid, tick=False):
        assert post_webhook(endpoint, _paid(paid)).json() == {"status": "queued"}
        _work()
    for day in (paid_on + 1, paid_on + 5, paid_on + 30):  # long after: nothing more
        with time_machine.travel(start + timedelta(days=day), tick=False):
            _work()

    assert LoopRun.objects.filter(loop=loop).count() == 1
    run = LoopRun.objects.get(loop=loop)
    assert run.entry_key == "key:in_1234" and run.status in {"completed", "stopped"}
    subjects = [message.subject for message in mailoutbox]
    assert subjects.count(FIRST) == 1
    assert subjects.count(REMINDER) <= 1
    reminders = EmailMessage.objects.filter(subject=REMINDER, status="sent")
    assert all(message.sent_at < paid for message in reminders)  # never after the payment
    if paid_on < 3:  # paid within the 3-day wait: no reminder at all
        assert REMINDER not in subjects and run.status == "stopped"
