"""The Stripe event types LoopSync supports, and how each yields a contact and event properties.

This is the one list: models, forms, the receive view, the task and pages all read it from here.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .money import amount_format


@dataclass(frozen=True)
class Extracted:
    email: str
    full_name: str = ""
    customer_id: str = ""
    previous_email: str = ""
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StripeEventType:
    type: str
    label: str
    description: str
    suggested_trigger: str  # offered in the settings page; blank by default means "sync only"
    email: Callable[[dict], str]  # cheap, used at receive time to ignore events with no email
    extract: Callable[[dict], Extracted]


# Every reader below takes whatever a signed payload holds: a field of the wrong type (`"customer_details":
# "x"`) reads as missing, never raises, so a delivery is kept as ignored ("no email") rather than lost.


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _obj(payload: dict) -> dict:
    return _dict(_dict(payload.get("data")).get("object"))


def _str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _id(value: Any) -> str:
    """A Stripe reference is an id string, or the object itself when the request expanded it."""
    if isinstance(value, dict):
        value = value.get("id")
    value = _str(value)
    return value if len(value) <= ID_MAX else ""  # no Stripe id is longer; the columns hold 255


ID_MAX = 255
TIME_MAX = 253_402_300_799  # the end of year 9999, where datetime ends


def _time(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= TIME_MAX:
        return datetime.fromtimestamp(value, tz=UTC).isoformat()
    return None


AMOUNT_MAX = 10**12  # Stripe's amounts stop at 8 digits (12 for a few currencies): past that, not an amount


def _money(obj: dict, key: str, currency: str) -> dict[str, Any]:
    """The amount in minor units and formatted; both None when the object has no usable amount, so that a
    template's `{% if event.amount_formatted %}` is false (an empty string is true in Liquid)."""
    amount = obj.get(key)
    usable = isinstance(amount, int) and not isinstance(amount, bool) and abs(amount) <= AMOUNT_MAX
    amount = amount if usable else None
    return {key: amount, f"{key}_formatted": amount_format(amount, currency) or None}


# --- customers ---------------------------------------------------------------------------------


def _customer_email(payload: dict) -> str:
    return _str(_obj(payload).get("email"))


def _customer_extract(payload: dict) -> Extracted:
    obj = _obj(payload)
    previous = _dict(_dict(payload.get("data")).get("previous_attributes"))
    return Extracted(
        email=_customer_email(payload),
        full_name=_str(obj.get("name")),
        customer_id=_id(obj.get("id")),
        previous_email=_str(previous.get("email")),
    )


# --- checkout sessions ---------------------------------------------------------------------------


def _checkout_email(payload: dict) -> str:
    obj = _obj(payload)
    return _str(_dict(obj.get("customer_details")).get("email")) or _str(obj.get("customer_email"))


def _checkout_extract(payload: dict) -> Extracted:
    obj = _obj(payload)
    details = _dict(obj.get("customer_details"))
    collected = _dict(obj.get("collected_information"))
    currency = _str(obj.get("currency")).lower()
    amount = _money(obj, "amount_total", currency)
    return Extracted(
        email=_checkout_email(payload),
        full_name=_str(details.get("name"))
        or _str(details.get("individual_name"))
        or _str(collected.get("individual_name")),
        customer_id=_id(obj.get("customer")),
        properties={
            "checkout_session_id": _id(obj.get("id")),
            "amount": amount["amount_total"],
            "amount_formatted": amount["amount_total_formatted"],
            **amount,
            **_money(obj, "amount_subtotal", currency),
            "currency": currency.upper(),
            "mode": _str(obj.get("mode")),
            "payment_status": _str(obj.get("payment_status")),
            "subscription_id": _id(obj.get("subscription")),
        },
    )


# --- invoices ------------------------------------------------------------------------------------


def _invoice_email(payload: dict) -> str:
    return _str(_obj(payload).get("customer_email"))


def _invoice_extractor(amount_key: str) -> Callable[[dict], Extracted]:
    """`amount` is what the email is about: paid for a paid invoice, due for a failed or coming one."""

    def extract(payload: dict) -> Extracted:
        obj = _obj(payload)
        currency = _str(obj.get("currency")).lower()
        amounts: dict[str, Any] = {}
        for key in ("amount_due", "amount_paid", "amount_remaining", "total", "subtotal"):
            amounts.update(_money(obj, key, currency))
        return Extracted(
            email=_invoice_email(payload),
            full_name=_str(obj.get("customer_name")),
            customer_id=_id(obj.get("customer")),
            properties={
                "invoice_id": _id(obj.get("id")),  # an upcoming invoice has none yet
                "amount": amounts[amount_key],
                "amount_formatted": amounts[f"{amount_key}_formatted"],
                **amounts,
                "currency": currency.upper(),
                "invoice_number": _str(obj.get("number")),
                "hosted_invoice_url": _str(obj.get("hosted_invoice_url")),
                "invoice_pdf_url": _str(obj.get("invoice_pdf")),
                "attempt_count": obj.get("attempt_count") if isinstance(obj.get("attempt_count"), int) else None,
                "billing_reason": _str(obj.get("billing_reason")),
                "status": _str(obj.get("status")),
                "next_payment_attempt": _time(obj.get("next_payment_attempt")),
                "period_start": _time(obj.get("period_start")),
                "period_end": _time(obj.get("period_end")),
                "due_date": _time(obj.get("due_date")),
                "subscription_id": _invoice_subscription(obj),
            },
        )

    return extract


def _invoice_subscription(invoice: dict) -> str:
    """The invoice's subscription: `parent.subscription_details.subscription` since API version 2025-03-31
    (basil), `subscription` before it."""
    details = _dict(_dict(invoice.get("parent")).get("subscription_details"))
    return _id(details.get("subscription")) or _id(invoice.get("subscription"))


SUPPORTED_EVENTS: dict[str, StripeEventType] = {
    spec.type: spec
    for spec in (
        StripeEventType(
            type="checkout.session.completed",
            label="Checkout completed",
            description="A customer completed a Checkout session (a purchase or a new subscription).",
            suggested_trigger="checkoutCompleted",
            email=_checkout_email,
            extract=_checkout_extract,
        ),
        StripeEventType(
            type="customer.created",
            label="Customer created",
            description="A new customer was created in Stripe.",
            suggested_trigger="newStripeCustomer",
            email=_customer_email,
            extract=_customer_extract,
        ),
        StripeEventType(
            type="customer.updated",
            label="Customer updated",
            description="A customer's details changed, such as their name or email.",
            suggested_trigger="",
            email=_customer_email,
            extract=_customer_extract,
        ),
        StripeEventType(
            type="invoice.paid",
            label="Invoice paid",
            description="An invoice was paid: a successful payment.",
            suggested_trigger="successfulPayment",
            email=_invoice_email,
            extract=_invoice_extractor("amount_paid"),
        ),
        StripeEventType(
            type="invoice.payment_failed",
            label="Invoice payment failed",
            description="A payment attempt on an invoice failed.",
            suggested_trigger="failedPayment",
            email=_invoice_email,
            extract=_invoice_extractor("amount_due"),
        ),
        StripeEventType(
            type="invoice.upcoming",
            label="Invoice upcoming",
            description="A subscription will renew soon (sent some days before the invoice is created).",
            suggested_trigger="upcomingInvoice",
            email=_invoice_email,
            extract=_invoice_extractor("amount_due"),
        ),
    )
}

EVENT_TYPE_CHOICES = [(spec.type, spec.type) for spec in SUPPORTED_EVENTS.values()]
