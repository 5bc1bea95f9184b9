"""Realistic sample Stripe events for the settings page's "Send test event", shaped like the fixtures
in tests/fixtures/stripe and the newest Stripe objects."""

import secrets
import time

from django.core.exceptions import ValidationError

from .stripe_events import SUPPORTED_EVENTS

TEST_EMAIL = "test@example.com"
SAMPLE_API_VERSION = "2025-03-31.basil"
DAY = 86_400


def _test_id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


def _sample_customer(*, customer: str, email: str, name: str, now: int) -> dict:
    return {
        "id": customer,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": now,
        "currency": "usd",
        "default_source": None,
        "delinquent": False,
        "description": None,
        "email": email,
        "invoice_prefix": secrets.token_hex(4).upper(),
        "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None},
        "livemode": False,
        "metadata": {"plan": "pro"},
        "name": name or None,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
    }


def _sample_checkout(*, customer: str, email: str, name: str, now: int) -> dict:
    return {
        "id": _test_id("cs"),
        "object": "checkout.session",
        "amount_subtotal": 1900,
        "amount_total": 1900,
        "created": now,
        "currency": "usd",
        "customer": customer,
        "customer_details": {
            "address": {"city": None, "country": "US", "line1": None, "line2": None, "postal_code": "94107"},
            "email": email,
            "name": name or None,
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        },
        "customer_email": None,
        "expires_at": now + DAY,
        "livemode": False,
        "metadata": {},
        "mode": "subscription",
        "payment_status": "paid",
        "status": "complete",
        "subscription": _test_id("sub"),
        "success_url": "https://example.com/welcome?session_id={CHECKOUT_SESSION_ID}",
        "url": None,
    }


def _sample_invoice(event_type: str, *, customer: str, email: str, name: str, now: int) -> dict:
    """A $19.00 monthly subscription invoice: paid, failed (retried in 3 days) or coming up."""
    paid, upcoming = event_type == "invoice.paid", event_type == "invoice.upcoming"
    invoice_id = _test_id("in")
    start, end = (now - 27 * DAY, now + 3 * DAY) if upcoming else (now - 30 * DAY, now)
    invoice = {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "amount_due": 1900,
        "amount_paid": 1900 if paid else 0,
        "amount_remaining": 0 if paid else 1900,
        "attempt_count": 0 if upcoming else 1,
        "attempted": not upcoming,
        "billing_reason": "upcoming" if upcoming else "subscription_cycle",
        "collection_method": "charge_automatically",
        "created": now,
        "currency": "usd",
        "customer": customer,
        "customer_email": email,
        "customer_name": name or None,
        "due_date": None,
        "hosted_invoice_url": f"https://invoice.stripe.com/i/{invoice_id}",
        "invoice_pdf": f"https://pay.stripe.com/invoice/{invoice_id}/pdf",
        "lines": {
            "object": "list",
            "data": [
                {
                    "id": _test_id("il"),
                    "object": "line_item",
                    "amount": 1900,
                    "currency": "usd",
                    "description": "1 × Pro (at $19.00 / month)",
                    "period": {"end": end, "start": start},
                    "quantity": 1,
                }
            ],
            "has_more": False,
            "total_count": 1,
            "url": f"/v1/invoices/{invoice_id}/lines",
        },
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None if paid else now + 3 * DAY,
        "number": f"{secrets.token_hex(4).upper()}-0001",
        "parent": {
            "quote_details": None,
            "subscription_details": {"metadata": {}, "subscription": _test_id("sub")},
            "type": "subscription_details",
        },
        "period_end": end,
        "period_start": start,
        "status": "paid" if paid else "open",
        "status_transitions": {"finalized_at": now, "paid_at": now if paid else None, "voided_at": None},
        "subtotal": 1900,
        "total": 1900,
    }
    if upcoming:  # a preview: no id, number or hosted page yet
        del invoice["id"]
        invoice.update(status="draft", number=None, hosted_invoice_url=None, invoice_pdf=None)
        invoice["status_transitions"]["finalized_at"] = None
        invoice["lines"]["url"] = "/v1/invoices/upcoming/lines"
    return invoice


def sample_event(*, event_type: str, email: str, name: str = "", customer_id: str = "") -> dict:
    """A Stripe event of a supported type as Stripe would send it in test mode, with a fresh id, for
    `customer_id` (a fresh test id when blank)."""
    if event_type not in SUPPORTED_EVENTS:
        raise ValidationError(f"Not a supported Stripe event type: {event_type}.")
    now = int(time.time())
    person = {"customer": customer_id or _test_id("cus"), "email": email, "name": name, "now": now}
    data: dict = {}
    if event_type.startswith("customer."):
        data["object"] = _sample_customer(**person)
        if event_type == "customer.updated":
            data["previous_attributes"] = {"metadata": {"plan": "starter"}}
    elif event_type == "checkout.session.completed":
        data["object"] = _sample_checkout(**person)
    else:
        data["object"] = _sample_invoice(event_type, **person)
    return {
        "id": _test_id("evt"),
        "object": "event",
        "api_version": SAMPLE_API_VERSION,
        "created": now,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
