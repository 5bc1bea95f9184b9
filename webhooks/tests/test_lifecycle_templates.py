"""The lifecycle templates, activated, fed by "Send test event" samples: the email each sends reads right."""

from datetime import timedelta

import pytest
from django.utils import timezone

from loops.models import EmailMessage, LoopRun
from loops.services.runs import runs_advance_due, runs_drain
from webhooks.services import endpoint_test_send, processing

pytestmark = pytest.mark.django_db

CASES = {
    # template → (Stripe type, subject, what the text says)
    "stripe-trial-ending": (
        "customer.subscription.trial_will_end",
        "Your trial ends on {trial_end}",
        ["Your free trial ends on {trial_end}", "your Pro plan continues at $19.00 a month"],
    ),
    "stripe-payment-action-required": (
        "invoice.payment_action_required",
        "Please confirm your payment of $19.00",
        ["before your payment of $19.00 can go through", "Confirm your payment: https://invoice.stripe.com/i/in_test_"],
    ),
    "stripe-plan-changed": (
        "customer.subscription.updated",
        "You're now on Pro",
        ["Your subscription changed from Starter to Pro", "Your new price is $19.00 a month"],
    ),
}


@pytest.mark.parametrize("slug", sorted(CASES))
def test_a_lifecycle_template_sends_friendly_copy_from_the_new_properties(team, user, make_endpoint, make_loop, slug):
    event_type, subject, lines = CASES[slug]
    loop = make_loop(team, slug)
    endpoint = make_endpoint(team, triggers={event_type: loop.trigger_event_name})
    endpoint_test_send(endpoint=endpoint, event_type=event_type, email=user.email, name="Ada Lovelace")
    processing.deliveries_drain()
    runs_drain()
    message = EmailMessage.objects.get()
    trial_end = message.run.event.properties.get("trial_end_formatted") or ""
    assert message.to_email == user.email and message.subject == subject.format(trial_end=trial_end)
    assert message.text_body.startswith("Hi Ada,")
    for line in lines:
        assert line.format(trial_end=trial_end) in message.text_body


def test_the_win_back_waits_three_days_and_skips_a_customer_who_came_back(team, user, make_endpoint, make_loop):
    loop = make_loop(team, "stripe-subscription-canceled")
    endpoint = make_endpoint(team, triggers={"customer.subscription.deleted": "subscriptionCanceled"})
    endpoint_test_send(endpoint=endpoint, event_type="customer.subscription.deleted", email=user.email)
    processing.deliveries_drain()
    runs_drain()
    run = LoopRun.objects.get(loop=loop)
    assert run.next_due_at > timezone.now() + timedelta(days=2) and not EmailMessage.objects.exists()
    run.contact.properties["subscriptionStatus"] = "active"  # subscribed again meanwhile
    run.contact.save()
    LoopRun.objects.filter(id=run.id).update(next_due_at=timezone.now(), wait_until=timezone.now())  # 3 days on
    runs_advance_due()
    runs_drain()
    run.refresh_from_db()
    assert run.status == "filtered_out" and not EmailMessage.objects.exists()
