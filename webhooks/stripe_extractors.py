"""How each supported Stripe object yields a contact (its email, or its Stripe customer), billing snapshots and
event properties. The types are listed in `stripe_events`; payload readers are in `stripe_readers`."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from contacts.billing import BillingUpdate

from . import stripe_billing as billing
from .stripe_readers import (
    as_dict,
    as_list,
    event_object,
    human_date,
    iso_time,
    money,
    previous_attributes,
    ref,
    text,
    timestamp,
)


@dataclass(frozen=True)
class Extracted:
    email: str  # "" when the object carries none: the contact is then found by its Stripe customer
    full_name: str = ""
    customer_id: str = ""
    previous_email: str = ""
    # A dispute names its charge, not its customer: with a Stripe key, the charge says who it is.
    charge_id: str = ""
    properties: dict[str, Any] = field(default_factory=dict)
    billing: tuple[BillingUpdate, ...] = ()
    # False when this event does not fire the type's events (a subscription update that changed no plan).
    fires: bool = True


def _created(payload: dict) -> int | None:
    return timestamp(payload.get("created"))


def customer_of(payload: dict) -> str:
    return ref(event_object(payload).get("customer"))


# --- customers ---------------------------------------------------------------------------------


def customer_email(payload: dict) -> str:
    return text(event_object(payload).get("email"))


def customer_object_id(payload: dict) -> str:
    return ref(event_object(payload))


def customer_extract(payload: dict) -> Extracted:
    obj = event_object(payload)
    update = billing.customer_update(obj)
    return Extracted(
        email=customer_email(payload),
        full_name=text(obj.get("name")),
        customer_id=ref(obj),
        previous_email=text(previous_attributes(payload).get("email")),
        billing=(update,) if update else (),
    )


# --- subscriptions -------------------------------------------------------------------------------


def _plan_key(subscription: dict) -> list[tuple[str, Any]]:
    """What a plan change changes: each item's price and quantity (the plan and quantity before items)."""
    items = [as_dict(item) for item in as_list(as_dict(subscription.get("items")).get("data"))]
    keyed = [(ref(item.get("price") or item.get("plan")), item.get("quantity")) for item in items]
    return [*keyed, (ref(subscription.get("plan")), subscription.get("quantity"))]


def plan_changed(payload: dict) -> bool:
    """A subscription update that changed its price or quantity (not a renewal, which changes the period,
    nor a status change). Stripe lists what changed in `previous_attributes`."""
    previous = previous_attributes(payload)
    if not {"items", "plan", "quantity"} & set(previous):
        return False
    current = event_object(payload)
    before = {**current, **{key: previous[key] for key in ("items", "plan", "quantity") if key in previous}}
    return _plan_key(before) != _plan_key(current)


def subscription_extract(payload: dict) -> Extracted:
    obj = event_object(payload)
    update = billing.subscription_update(obj, event_type=text(payload.get("type")))
    values = update.values if update else {}
    currency = values.get("currency") or ""
    price = billing.plan_price(obj)
    previous = previous_attributes(payload)
    previous_price = {}
    if "items" in previous:
        previous_price = billing.plan_price({"items": previous["items"]})
    elif "plan" in previous:  # the plans era: the subscription's own plan changed
        previous_price = as_dict(previous["plan"])
    details = as_dict(obj.get("cancellation_details"))
    changed = plan_changed(payload)
    return Extracted(
        email="",
        customer_id=customer_of(payload),
        properties={
            "subscription_id": ref(obj),
            "status": values.get("subscriptionStatus"),
            "plan_name": values.get("planName"),
            "plan_id": values.get("planId"),
            "plan_interval": values.get("planInterval"),
            **money({"plan_amount": billing.unit_amount(price)}, "plan_amount", currency),
            "currency": currency.upper(),
            "mrr": values.get("mrr"),
            "trial_end": values.get("trialEnd"),
            "trial_end_formatted": human_date(obj.get("trial_end")),
            "current_period_end": values.get("currentPeriodEnd"),
            "current_period_end_formatted": human_date(billing.period_end_of(obj)),
            "cancel_at_period_end": values.get("cancelAtPeriodEnd"),
            "canceled_at": values.get("canceledAt"),
            "cancellation_reason": text(details.get("reason")) or None,
            "cancellation_feedback": text(details.get("feedback")) or None,
            "previous_plan_name": billing.plan_name(previous_price) or None,
            "previous_status": text(previous.get("status")) or None,
            "plan_changed": changed,
        },
        billing=(update,) if update else (),
        fires=changed or payload.get("type") != "customer.subscription.updated",
    )


# --- checkout sessions ---------------------------------------------------------------------------


def checkout_email(payload: dict) -> str:
    obj = event_object(payload)
    return text(as_dict(obj.get("customer_details")).get("email")) or text(obj.get("customer_email"))


def checkout_extract(payload: dict) -> Extracted:
    obj = event_object(payload)
    details = as_dict(obj.get("customer_details"))
    collected = as_dict(obj.get("collected_information"))
    currency = text(obj.get("currency")).lower()
    amount = money(obj, "amount_total", currency)
    return Extracted(
        email=checkout_email(payload),
        full_name=text(details.get("name"))
        or text(details.get("individual_name"))
        or text(collected.get("individual_name")),
        customer_id=ref(obj.get("customer")),
        properties={
            "checkout_session_id": ref(obj),
            "amount": amount["amount_total"],
            "amount_formatted": amount["amount_total_formatted"],
            **amount,
            **money(obj, "amount_subtotal", currency),
            "currency": currency.upper(),
            "mode": text(obj.get("mode")),
            "payment_status": text(obj.get("payment_status")),
            "subscription_id": ref(obj.get("subscription")),
        },
    )


# --- invoices ------------------------------------------------------------------------------------


def invoice_email(payload: dict) -> str:
    return text(event_object(payload).get("customer_email"))


def _invoice_subscription(invoice: dict) -> str:
    """The invoice's subscription: `parent.subscription_details.subscription` since API version 2025-03-31
    (basil), `subscription` before it."""
    details = as_dict(as_dict(invoice.get("parent")).get("subscription_details"))
    return ref(details.get("subscription")) or ref(invoice.get("subscription"))


def invoice_extractor(amount_key: str) -> Callable[[dict], Extracted]:
    """`amount` is what the email is about: paid for a paid invoice, due for a failed or coming one."""

    def extract(payload: dict) -> Extracted:
        obj = event_object(payload)
        currency = text(obj.get("currency")).lower()
        amounts: dict[str, Any] = {}
        for key in ("amount_due", "amount_paid", "amount_remaining", "total", "subtotal"):
            amounts.update(money(obj, key, currency))
        kind = payload.get("type")
        if kind == "invoice.paid":
            update = billing.invoice_paid_update(obj, event_created=_created(payload))
        elif kind == "invoice.payment_failed":
            update = billing.payment_failed_update(event_created=_created(payload))
        else:
            update = None
        return Extracted(
            email=invoice_email(payload),
            full_name=text(obj.get("customer_name")),
            customer_id=ref(obj.get("customer")),
            properties={
                "invoice_id": ref(obj),  # an upcoming invoice has none yet
                "amount": amounts[amount_key],
                "amount_formatted": amounts[f"{amount_key}_formatted"],
                **amounts,
                "currency": currency.upper(),
                "invoice_number": text(obj.get("number")),
                "hosted_invoice_url": text(obj.get("hosted_invoice_url")),
                "invoice_pdf_url": text(obj.get("invoice_pdf")),
                "attempt_count": obj.get("attempt_count") if isinstance(obj.get("attempt_count"), int) else None,
                "billing_reason": text(obj.get("billing_reason")),
                "status": text(obj.get("status")),
                "next_payment_attempt": iso_time(obj.get("next_payment_attempt")),
                "period_start": iso_time(obj.get("period_start")),
                "period_end": iso_time(obj.get("period_end")),
                "due_date": iso_time(obj.get("due_date")),
                "subscription_id": _invoice_subscription(obj),
            },
            billing=(update,) if update else (),
        )

    return extract


# --- charges, refunds and disputes ---------------------------------------------------------------


def charge_email(payload: dict) -> str:
    obj = event_object(payload)
    return text(as_dict(obj.get("billing_details")).get("email")) or text(obj.get("receipt_email"))


def charge_extract(payload: dict) -> Extracted:
    obj = event_object(payload)
    currency = text(obj.get("currency")).lower()
    refunded, charge = money(obj, "amount_refunded", currency), money(obj, "amount", currency)
    return Extracted(
        email=charge_email(payload),
        full_name=text(as_dict(obj.get("billing_details")).get("name")),
        customer_id=customer_of(payload),
        properties={
            "charge_id": ref(obj),
            "amount": refunded["amount_refunded"],
            "amount_formatted": refunded["amount_refunded_formatted"],
            **refunded,
            "charge_amount": charge["amount"],
            "charge_amount_formatted": charge["amount_formatted"],
            "currency": currency.upper(),
            "refunded": obj.get("refunded") is True,  # fully refunded; partly when false
            "receipt_url": text(obj.get("receipt_url")),
            "payment_intent_id": ref(obj.get("payment_intent")),
            "invoice_id": ref(obj.get("invoice")),
        },
    )


def dispute_email(payload: dict) -> str:
    return text(as_dict(event_object(payload).get("evidence")).get("customer_email_address"))


def dispute_customer(payload: dict) -> str:
    charge = event_object(payload).get("charge")
    return ref(as_dict(charge).get("customer")) or ref(charge)


def dispute_extract(payload: dict) -> Extracted:
    obj = event_object(payload)
    charge = obj.get("charge")
    currency = text(obj.get("currency")).lower()
    amount = money(obj, "amount", currency)
    return Extracted(
        email=dispute_email(payload),
        full_name=text(as_dict(obj.get("evidence")).get("customer_name")),
        customer_id=ref(as_dict(charge).get("customer")),
        charge_id=ref(charge),
        properties={
            "dispute_id": ref(obj),
            **amount,
            "amount_formatted": amount["amount_formatted"],
            "currency": currency.upper(),
            "reason": text(obj.get("reason")),
            "status": text(obj.get("status")),
            "charge_id": ref(charge),
            "payment_intent_id": ref(obj.get("payment_intent")),
            "evidence_due_by": iso_time(as_dict(obj.get("evidence_details")).get("due_by")),
        },
    )


# --- quotes --------------------------------------------------------------------------------------


def quote_extract(payload: dict) -> Extracted:
    obj = event_object(payload)
    currency = text(obj.get("currency")).lower()
    total = money(obj, "amount_total", currency)
    return Extracted(
        email="",
        customer_id=customer_of(payload),
        properties={
            "quote_id": ref(obj),
            "quote_number": text(obj.get("number")),
            "status": text(obj.get("status")),
            "amount": total["amount_total"],
            "amount_formatted": total["amount_total_formatted"],
            **total,
            **money(obj, "amount_subtotal", currency),
            "currency": currency.upper(),
            "description": text(obj.get("description")),
            "expires_at": iso_time(obj.get("expires_at")),
            "subscription_id": ref(obj.get("subscription")),
            "invoice_id": ref(obj.get("invoice")),
        },
    )


def no_email(payload: dict) -> str:
    return ""
