"""Seed the Stripe loop templates. Idempotent: rows are matched by slug and brought up to date."""

from django.db import migrations

SIGN_OFF = "\n\nThanks,\nThe team"

TEMPLATES = [
    {
        "slug": "stripe-new-customer",
        "name": "Stripe - New Customer",
        "description": "Welcome a new Stripe customer the moment they sign up.",
        "trigger_event_name": "newStripeCustomer",
        "steps": [
            {
                "kind": "email",
                "subject": "Welcome aboard, {{ contact.first_name | default: \"friend\" }}!",
                "preview_text": "Here's how to get the most out of your account.",
                "body": (
                    "Hi {{ contact.first_name | default: \"there\" }},\n\n"
                    "Thanks for signing up. We're really glad you're here.\n\n"
                    "A few things you can do right away:\n\n"
                    "- Set up your account the way you like it\n"
                    "- Invite your team\n"
                    "- Reply to this email if anything is unclear: a real person reads every reply"
                    + SIGN_OFF
                ),
            },
        ],
    },
    {
        "slug": "stripe-payment-successful",
        "name": "Stripe - Payment Successful",
        "description": "Thank the customer for each paid invoice, with a link to it.",
        "trigger_event_name": "successfulPayment",
        "steps": [
            {
                "kind": "email",
                "subject": "Thanks for your payment{% if event.amount_formatted %} of {{ event.amount_formatted }}{% endif %}",
                "preview_text": "Your receipt{% if event.invoice_number %} for invoice {{ event.invoice_number }}{% endif %}.",
                "body": (
                    "Hi {{ contact.first_name | default: \"there\" }},\n\n"
                    "We received your payment{% if event.amount_formatted %} of **{{ event.amount_formatted }}**"
                    "{% endif %}. Thank you!\n\n"
                    "{% if event.hosted_invoice_url %}[View your invoice]({{ event.hosted_invoice_url }}){.button}\n\n"
                    "{% endif %}"
                    "{% if event.invoice_pdf_url %}You can also [download it as a PDF]({{ event.invoice_pdf_url }}).\n\n"
                    "{% endif %}"
                    "No action is needed on your side." + SIGN_OFF
                ),
            },
        ],
    },
    {
        "slug": "stripe-payment-failed",
        "name": "Stripe - Payment Failed",
        "description": (
            "Tell the customer a payment failed; if no payment comes within 3 days, send a friendly reminder."
        ),
        "trigger_event_name": "failedPayment",
        "steps": [
            {
                "kind": "email",
                "subject": "Your payment{% if event.amount_formatted %} of {{ event.amount_formatted }}{% endif %} didn't go through",
                "preview_text": "Please update your payment method to keep your account active.",
                "body": (
                    "Hi {{ contact.first_name | default: \"there\" }},\n\n"
                    "We tried to charge your card{% if event.amount_formatted %} **{{ event.amount_formatted }}**"
                    "{% endif %}, but the payment didn't go through. This happens: a card expires, a bank says no.\n\n"
                    "Please update your payment details so your account stays active:\n\n"
                    "{% if event.hosted_invoice_url %}[Update payment method]({{ event.hosted_invoice_url }}){.button}"
                    "\n\n{% endif %}"
                    "If you think this is a mistake, just reply to this email." + SIGN_OFF
                ),
            },
            {
                "kind": "wait_event",
                "wait_event_name": "successfulPayment",
                "delay_value": 3,
                "delay_unit": "days",
                "on_event": "stop",
                "on_timeout": "continue",
            },
            {
                "kind": "email",
                "subject": "Reminder: your payment{% if event.amount_formatted %} of {{ event.amount_formatted }}{% endif %} is still due",
                "preview_text": "A quick update to your card keeps everything running.",
                "body": (
                    "Hi {{ contact.first_name | default: \"there\" }},\n\n"
                    "A quick reminder: your payment{% if event.amount_formatted %} of "
                    "**{{ event.amount_formatted }}**{% endif %} is still outstanding"
                    "{% if event.invoice_number %} (invoice {{ event.invoice_number }}){% endif %}.\n\n"
                    "{% if event.hosted_invoice_url %}[Pay now]({{ event.hosted_invoice_url }}){.button}\n\n{% endif %}"
                    "It only takes a minute, and we'd hate for you to lose access." + SIGN_OFF
                ),
            },
        ],
    },
    {
        "slug": "stripe-upcoming-invoice",
        "name": "Stripe - Upcoming Invoice",
        "description": "Give the customer a heads-up before their subscription renews.",
        "trigger_event_name": "upcomingInvoice",
        "steps": [
            {
                "kind": "email",
                "subject": "Your subscription renews soon",
                "preview_text": "{% if event.amount_formatted %}{{ event.amount_formatted }} will be charged soon.{% endif %}",
                "body": (
                    "Hi {{ contact.first_name | default: \"there\" }},\n\n"
                    "Just a heads-up: your subscription renews soon"
                    "{% if event.amount_formatted %} and **{{ event.amount_formatted }}** will be charged to your "
                    "payment method on file{% endif %}.\n\n"
                    "Nothing to do if everything's up to date. If you'd like to change your plan or card, "
                    "reply to this email and we'll help." + SIGN_OFF
                ),
            },
        ],
    },
]


def seed(apps, schema_editor):
    LoopTemplate = apps.get_model("loops", "LoopTemplate")
    for position, spec in enumerate(TEMPLATES):
        fields = {k: v for k, v in spec.items() if k != "slug"}
        LoopTemplate.objects.update_or_create(
            slug=spec["slug"], defaults={**fields, "trigger": "event", "position": position}
        )


def unseed(apps, schema_editor):
    apps.get_model("loops", "LoopTemplate").objects.filter(slug__in=[t["slug"] for t in TEMPLATES]).delete()


class Migration(migrations.Migration):
    dependencies = [("loops", "0002_loops_runs_emails")]

    operations = [migrations.RunPython(seed, unseed)]
