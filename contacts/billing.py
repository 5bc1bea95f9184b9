"""Stripe billing state on a contact: typed properties kept from the newest Stripe objects seen.

A contact keeps, in `Contact.stripe_billing`, the last snapshot of each Stripe object that describes its
billing (each subscription, the customer, each paid invoice), with the `created` time of the event that
carried it. A snapshot is replaced only by one at least as new, so an older event that Stripe delivers
late never overwrites newer state. The properties (`BILLING_PROPERTIES`) are derived from all snapshots
and written into `Contact.properties`, where filters, templates and the API read them like any other.
"""

from dataclasses import dataclass, field
from typing import Any

from .models import Contact, ContactProperty

T = ContactProperty.Type
# The built-in billing properties and their types: declared here, not per team, so they exist for every
# team, are typed wherever properties are checked, and never count against CONTACT_PROPERTIES_PER_TEAM.
BILLING_PROPERTIES: dict[str, str] = {
    "subscriptionStatus": T.STRING,
    "planName": T.STRING,
    "planId": T.STRING,
    "planInterval": T.STRING,
    "planAmount": T.NUMBER,
    "currency": T.STRING,
    "mrr": T.NUMBER,
    "trialEnd": T.DATE,
    "currentPeriodEnd": T.DATE,
    "canceledAt": T.DATE,
    "cancelAtPeriodEnd": T.BOOLEAN,
    "delinquent": T.BOOLEAN,
    "ltv": T.NUMBER,
    "lastPaymentAt": T.DATE,
    "lastPaymentFailedAt": T.DATE,
}
BILLING_LABELS = {
    "subscriptionStatus": "Subscription status",
    "planName": "Plan",
    "planId": "Plan (price id)",
    "planInterval": "Billing interval",
    "planAmount": "Plan amount",
    "currency": "Currency",
    "mrr": "MRR",
    "trialEnd": "Trial ends",
    "currentPeriodEnd": "Current period ends",
    "canceledAt": "Canceled at",
    "cancelAtPeriodEnd": "Cancels at period end",
    "delinquent": "Delinquent",
    "ltv": "Lifetime value",
    "lastPaymentAt": "Last payment",
    "lastPaymentFailedAt": "Last failed payment",
}
# What a subscription snapshot sets; the state describes the most recently created subscription not ended.
SUBSCRIPTION_KEYS = ("subscriptionStatus", "planName", "planId", "planInterval", "planAmount", "currency",
                     "trialEnd", "currentPeriodEnd", "canceledAt", "cancelAtPeriodEnd")  # fmt: skip
# A subscription in one of these has ended: it describes the contact only when no other subscription does.
ENDED = frozenset({"canceled", "incomplete_expired"})
# What counts in MRR, as Stripe's own MRR counts it: subscriptions being billed, paid or overdue. A trial is not
# revenue yet; a paused, unpaid or incomplete subscription (its first payment never went through) brings none.
BILLING = frozenset({"active", "past_due"})
# Paid invoices remembered one by one (so that one seen twice, by a webhook and an import, counts once);
# past this many, the oldest are folded into a sum.
PAID_INVOICES_KEPT = 500


@dataclass(frozen=True)
class BillingUpdate:
    """What one Stripe object says about a contact's billing.

    kind: "subscription" (values: SUBSCRIPTION_KEYS, plus `created` and `mrr` of that subscription),
    "customer" (values: `delinquent`), "invoice_paid" (values: `amount` in major units, `paidAt`) or
    "payment_failed" (values: `failedAt`)."""

    kind: str
    object_id: str
    values: dict[str, Any] = field(default_factory=dict)
    # Breaks a tie between two snapshots of one object from the same second: Stripe sends a subscription's
    # `created` before its `updated`s, and those before its `deleted`, but may deliver them the other way.
    rank: int = 1


def billing_merge(state: dict, update: BillingUpdate, *, at: int) -> bool:
    """Fold `update`, carried by an event created at `at` (Unix seconds), into `state` in place. False when
    the state already holds newer news of that object (nothing changed)."""
    if update.kind == "subscription":
        subscriptions = state.setdefault("subscriptions", {})
        known = subscriptions.get(update.object_id)
        if known and (known["at"], known.get("rank", 1)) > (at, update.rank):
            return False
        subscriptions[update.object_id] = {**update.values, "at": at, "rank": update.rank}
    elif update.kind == "customer":
        if state.get("customer", {}).get("at", 0) > at:
            return False
        state["customer"] = {**update.values, "at": at}
    elif update.kind == "invoice_paid":
        paid = state.setdefault("paid", {})
        if update.object_id in paid:
            return False
        paid[update.object_id] = [update.values.get("amount") or 0, update.values.get("paidAt") or ""]
        if len(paid) > PAID_INVOICES_KEPT:
            folded_amount, folded_at = paid.pop(min(paid, key=lambda key: paid[key][1]))
            state["ltv_folded"] = state.get("ltv_folded", 0) + folded_amount
            state["paid_folded_at"] = max(state.get("paid_folded_at", ""), folded_at)
    elif update.kind == "payment_failed":
        if state.get("failed", {}).get("at", 0) > at:
            return False
        state["failed"] = {"at": at, "failedAt": update.values.get("failedAt")}
    else:
        raise ValueError(f"Unknown billing update: {update.kind}")
    return True


def billing_properties(state: dict) -> dict[str, Any]:
    """The billing properties `state` determines; None for each one it knows nothing of (removed)."""
    props: dict[str, Any] = dict.fromkeys(BILLING_PROPERTIES)
    subscriptions = list(state.get("subscriptions", {}).values())
    if subscriptions:
        running = [s for s in subscriptions if s.get("subscriptionStatus") not in ENDED]
        current = max(running or subscriptions, key=lambda s: (s.get("created") or 0, s["at"]))
        props.update({key: current.get(key) for key in SUBSCRIPTION_KEYS})
        props["mrr"] = round(sum(s.get("mrr") or 0 for s in running if s.get("subscriptionStatus") in BILLING), 2)
    if "customer" in state:
        props["delinquent"] = state["customer"].get("delinquent")
    paid = state.get("paid", {})
    if paid or "ltv_folded" in state:
        props["ltv"] = round(state.get("ltv_folded", 0) + sum(amount for amount, _ in paid.values()), 2)
        paid_at = [at for _, at in paid.values() if at] + [state.get("paid_folded_at", "")]
        props["lastPaymentAt"] = max(paid_at) or None
    if "failed" in state:
        props["lastPaymentFailedAt"] = state["failed"].get("failedAt")
    return props


def billing_fold(contact: Contact, updates: list[BillingUpdate] | tuple[BillingUpdate, ...], at: int) -> bool:
    """Apply billing updates to an unsaved or locked contact in memory; True when anything changed (the
    caller saves)."""
    state = dict(contact.stripe_billing or {})
    changed = False
    for update in updates:
        changed = billing_merge(state, update, at=at) or changed
    if not changed:
        return False
    properties = dict(contact.properties or {})
    for key, value in billing_properties(state).items():
        if value is None:
            properties.pop(key, None)
        else:
            properties[key] = value
    contact.stripe_billing, contact.properties = state, properties
    return True


def contact_billing_apply(*, contact: Contact, updates: list[BillingUpdate], at: int) -> bool:
    """Apply billing updates to a contact the caller holds locked, and save it if anything changed."""
    from .changes import changes_send, contact_state, state_changes

    before = contact_state(contact)
    if not billing_fold(contact, updates, at):
        return False
    contact.save(update_fields=["stripe_billing", "properties", "updated_at"])
    changes_send([(contact, state_changes(before, contact))])
    return True
