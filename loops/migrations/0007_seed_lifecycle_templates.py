"""Seed the templates for the Stripe customer lifecycle. Idempotent: rows are matched by slug and brought up to
date, after the first four (0003)."""

from django.db import migrations

SIGN_OFF = "\n\nThanks,\nThe team"
HI = 'Hi {{ contact.first_name | default: "there" }},\n\n'

TEMPLATES = [
    {
        "slug": "stripe-trial-ending",
        "name": "Stripe - Trial Ending",
        "description": "Three days before a trial ends: remind the customer what they get, and what happens next.",
        "trigger_event_name": "trialEnding",
        "steps": [
            {
                "kind": "email",
                "subject": "Your trial ends {% if event.trial_end_formatted %}on {{ event.trial_end_formatted }}"
                "{% else %}soon{% endif %}",
                "preview_text": "A quick note before your {{ contact.planName | default: \"trial\" }} plan starts.",
                "body": (
                    HI + "Your free trial ends {% if event.trial_end_formatted %}on **{{ event.trial_end_formatted }}**"
                    "{% else %}in a few days{% endif %}. We hope it has been useful so far.\n\n"
                    "{% if event.plan_amount_formatted %}After that, your {{ contact.planName }} plan continues at "
                    "**{{ event.plan_amount_formatted }} a {{ contact.planInterval | default: \"month\" }}**, "
                    "charged to the payment method on file. Nothing to do if that sounds right.\n\n{% endif %}"
                    "If you'd like to change plans or cancel, you can do it any time before then, or just reply to "
                    "this email and we'll sort it out for you." + SIGN_OFF
                ),
            },
        ],
    },
    {
        "slug": "stripe-subscription-canceled",
        "name": "Stripe - Subscription Canceled",
        "description": "A few days after a subscription ends, ask what went wrong and invite the customer back.",
        "trigger_event_name": "subscriptionCanceled",
        "steps": [
            {"kind": "timer", "delay_value": 3, "delay_unit": "days"},
            {
                "kind": "filter",
                # Won back meanwhile (a new subscription): no win-back email.
                "filter_field": "properties.subscriptionStatus",
                "filter_operator": "equals",
                "filter_value": "canceled",
            },
            {
                "kind": "email",
                "subject": "We miss you, {{ contact.first_name | default: \"friend\" }}",
                "preview_text": "Your account is still here whenever you want it back.",
                "body": (
                    HI + "It's been a few days since your {{ event.plan_name | default: \"subscription\" }} ended, "
                    "and we wanted to say thank you for giving us a try.\n\n"
                    "If something didn't work for you, we'd really like to know: just hit reply. A real person "
                    "reads every answer, and your feedback shapes what we build next.\n\n"
                    "Your account and your data are still here. If you ever want to pick up where you left off, "
                    "restarting takes a minute." + SIGN_OFF
                ),
            },
        ],
    },
    {
        "slug": "stripe-payment-action-required",
        "name": "Stripe - Payment Action Required",
        "description": "When the bank asks the customer to confirm a payment (3D Secure, SCA), send them the link.",
        "trigger_event_name": "paymentActionRequired",
        "steps": [
            {
                "kind": "email",
                "subject": "Please confirm your payment{% if event.amount_formatted %} of {{ event.amount_formatted }}"
                "{% endif %}",
                "preview_text": "Your bank needs you to approve it before it can go through.",
                "body": (
                    HI + "Your bank asked for one extra step before your payment"
                    "{% if event.amount_formatted %} of **{{ event.amount_formatted }}**{% endif %} can go through. "
                    "It's a security check, and it only takes a moment.\n\n"
                    "{% if event.hosted_invoice_url %}[Confirm your payment]({{ event.hosted_invoice_url }}){.button}"
                    "\n\n{% endif %}"
                    "Until it's confirmed, the payment stays pending. If you didn't expect this, reply to this email "
                    "and we'll help." + SIGN_OFF
                ),
            },
        ],
    },
    {
        "slug": "stripe-plan-changed",
        "name": "Stripe - Plan Changed",
        "description": "Confirm a plan change (an upgrade, a downgrade, more seats) and what it costs now.",
        "trigger_event_name": "planChanged",
        "steps": [
            {
                "kind": "email",
                "subject": "You're now on {{ contact.planName | default: \"your new plan\" }}",
                "preview_text": "Here's what changed on your subscription.",
                "body": (
                    HI + "Your subscription changed"
                    "{% if event.previous_plan_name %} from {{ event.previous_plan_name }}{% endif %}"
                    " to **{{ contact.planName | default: event.plan_name }}**.\n\n"
                    "{% if event.plan_amount_formatted %}Your new price is **{{ event.plan_amount_formatted }} a "
                    "{{ contact.planInterval | default: \"month\" }}**{% if event.current_period_end_formatted %}, "
                    "starting with the period after {{ event.current_period_end_formatted }}{% endif %}.\n\n"
                    "{% endif %}"
                    "If you didn't mean to make this change, reply to this email and we'll put it right." + SIGN_OFF
                ),
            },
        ],
    },
]
FIRST_POSITION = 4  # after the four of 0003


def seed(apps, schema_editor):
    LoopTemplate = apps.get_model("loops", "LoopTemplate")
    for position, spec in enumerate(TEMPLATES, start=FIRST_POSITION):
        fields = {k: v for k, v in spec.items() if k != "slug"}
        LoopTemplate.objects.update_or_create(
            slug=spec["slug"], defaults={**fields, "trigger": "event", "position": position}
        )


def unseed(apps, schema_editor):
    apps.get_model("loops", "LoopTemplate").objects.filter(slug__in=[t["slug"] for t in TEMPLATES]).delete()


class Migration(migrations.Migration):
    dependencies = [("loops", "0006_test_mode")]

    operations = [migrations.RunPython(seed, unseed)]
