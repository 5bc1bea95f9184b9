"""Realistic sample Stripe events for the settings page's "Send test event", shaped like the fixtures
in tests/fixtures/stripe and the newest Stripe objects."""

import copy
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
    action_required = event_type == "invoice.payment_action_required"
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
        "next_payment_attempt": None if paid or action_required else now + 3 * DAY,
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


PRO_PRICE = {
    "id": "price_test_pro_monthly",
    "object": "price",
    "active": True,
    "billing_scheme": "per_unit",
    "currency": "usd",
    "livemode": False,
    "lookup_key": None,
    "nickname": "Pro",
    "product": "prod_test_pro",
    "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
    "type": "recurring",
    "unit_amount": 1900,
}
STARTER_PRICE = {**PRO_PRICE, "id": "price_test_starter_monthly", "nickname": "Starter", "unit_amount": 900}


def _item(price: dict, *, subscription: str, start: int, end: int) -> dict:
    return {
        "id": _test_id("si"),
        "object": "subscription_item",
        "current_period_end": end,
        "current_period_start": start,
        "price": price,
        "quantity": 1,
        "subscription": subscription,
    }


def _sample_subscription(event_type: str, *, customer: str, now: int, **_) -> dict:
    """A $19.00/month "Pro" subscription, in the state the event leaves it (API 2025-03-31: periods on items)."""
    kind = event_type.rsplit(".", 1)[1]
    subscription_id = _test_id("sub")
    trialing = kind in {"trial_will_end", "created"}
    start, end = (now, now + 3 * DAY) if trialing else (now - 10 * DAY, now + 20 * DAY)
    status = {"deleted": "canceled", "paused": "paused", "trial_will_end": "trialing", "created": "trialing"}
    return {
        "id": subscription_id,
        "object": "subscription",
        "billing_cycle_anchor": start,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": now if kind == "deleted" else None,
        "cancellation_details": {
            "comment": None,
            "feedback": "too_expensive" if kind == "deleted" else None,
            "reason": "cancellation_requested" if kind == "deleted" else None,
        },
        "collection_method": "charge_automatically",
        "created": now - (0 if kind == "created" else 40 * DAY),
        "currency": "usd",
        "customer": customer,
        "ended_at": now if kind == "deleted" else None,
        "items": {
            "object": "list",
            "data": [_item(PRO_PRICE, subscription=subscription_id, start=start, end=end)],
            "has_more": False,
            "total_count": 1,
            "url": f"/v1/subscription_items?subscription={subscription_id}",
        },
        "latest_invoice": _test_id("in"),
        "livemode": False,
        "metadata": {},
        "pause_collection": {"behavior": "void", "resumes_at": None} if kind == "paused" else None,
        "start_date": now - 40 * DAY,
        "status": status.get(kind, "active"),
        "trial_end": end if trialing else None,
        "trial_start": now - 11 * DAY if trialing else None,
    }


def _sample_charge(*, customer: str, email: str, name: str, now: int) -> dict:
    charge_id = _test_id("ch")
    return {
        "id": charge_id,
        "object": "charge",
        "amount": 1900,
        "amount_captured": 1900,
        "amount_refunded": 1900,
        "billing_details": {"address": None, "email": email, "name": name or None, "phone": None},
        "captured": True,
        "created": now - 2 * DAY,
        "currency": "usd",
        "customer": customer,
        "invoice": _test_id("in"),
        "livemode": False,
        "paid": True,
        "payment_intent": _test_id("pi"),
        "receipt_email": email,
        "receipt_url": f"https://pay.stripe.com/receipts/{charge_id}",
        "refunded": True,
        "status": "succeeded",
    }


def _sample_dispute(event_type: str, *, email: str, name: str, now: int, **_) -> dict:
    closed = event_type.endswith(".closed")
    return {
        "id": _test_id("dp"),
        "object": "dispute",
        "amount": 1900,
        "charge": _test_id("ch"),
        "created": now - (10 * DAY if closed else 0),
        "currency": "usd",
        "evidence": {"customer_email_address": email, "customer_name": name or None},
        "evidence_details": {"due_by": now + 7 * DAY, "has_evidence": False, "past_due": False},
        "is_charge_refundable": False,
        "livemode": False,
        "payment_intent": _test_id("pi"),
        "reason": "product_not_received",
        "status": "won" if closed else "needs_response",
    }


def _sample_quote(event_type: str, *, customer: str, now: int, **_) -> dict:
    status = {"quote.finalized": "open", "quote.accepted": "accepted", "quote.canceled": "canceled"}[event_type]
    return {
        "id": _test_id("qt"),
        "object": "quote",
        "amount_subtotal": 228000,
        "amount_total": 228000,
        "created": now - DAY,
        "currency": "usd",
        "customer": customer,
        "description": "Pro, yearly, for 10 seats",
        "expires_at": now + 30 * DAY,
        "invoice": _test_id("in") if status == "accepted" else None,
        "livemode": False,
        "number": f"QT-{secrets.token_hex(4).upper()}-0001-1",
        "status": status,
        "subscription": _test_id("sub") if status == "accepted" else None,
    }


def sample_event(*, event_type: str, email: str, name: str = "", customer_id: str = "") -> dict:
    """A Stripe event of a supported type as Stripe would send it in test mode, with a fresh id, for
    `customer_id` (a fresh test id when blank)."""
    if event_type not in SUPPORTED_EVENTS:
        raise ValidationError(f"Not a supported Stripe event type: {event_type}.")
    now = int(time.time())
    person = {"customer": customer_id or _test_id("cus"), "email": email, "name": name, "now": now}
    data: dict = {}
    if event_type.startswith("customer.subscription."):
        data["object"] = _sample_subscription(event_type, **person)
        if event_type == "customer.subscription.updated":  # a plan change, from Starter to Pro
            previous_items = copy.deepcopy(data["object"]["items"])
            previous_items["data"][0]["price"] = STARTER_PRICE
            data["previous_attributes"] = {"items": previous_items}
        if event_type == "customer.subscription.resumed":
            data["previous_attributes"] = {"status": "paused", "pause_collection": {"behavior": "void"}}
    elif event_type.startswith("customer."):
        data["object"] = _sample_customer(**person)
        if event_type == "customer.updated":
            data["previous_attributes"] = {"metadata": {"plan": "starter"}}
    elif event_type.startswith("checkout.session."):
        data["object"] = _sample_checkout(**person)
        if event_type == "checkout.session.async_payment_failed":
            data["object"]["payment_status"] = "unpaid"
    elif event_type == "charge.refunded":
        data["object"] = _sample_charge(**person)
    elif event_type.startswith("charge.dispute."):
        data["object"] = _sample_dispute(event_type, **person)
    elif event_type.startswith("quote."):
        data["object"] = _sample_quote(event_type, **person)
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
