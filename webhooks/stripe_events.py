"""The Stripe event types LoopSync supports: this is the one list. Models, forms, the receive view, the task
and pages all read it from here; each type's extractor is in `stripe_extractors`.
"""

from collections.abc import Callable
from dataclasses import dataclass

from .stripe_extractors import (  # noqa: F401 - Extracted is part of this module's interface
    Extracted,
    charge_email,
    charge_extract,
    checkout_email,
    checkout_extract,
    customer_email,
    customer_extract,
    customer_object_id,
    customer_of,
    dispute_customer,
    dispute_email,
    dispute_extract,
    invoice_email,
    invoice_extractor,
    no_email,
    quote_extract,
    subscription_extract,
)


@dataclass(frozen=True)
class StripeEventType:
    type: str
    label: str
    description: str
    suggested_trigger: str  # offered in the settings page; blank by default means "sync only"
    email: Callable[[dict], str]  # cheap, used at receive time: with no email and no customer, ignored
    customer: Callable[[dict], str]  # the Stripe customer (or, for a dispute, the charge) it is about
    extract: Callable[[dict], Extracted]


def _type(event_type, label, description, trigger, email, customer, extract) -> StripeEventType:
    return StripeEventType(event_type, label, description, trigger, email, customer, extract)


_invoice_due = invoice_extractor("amount_due")

SUPPORTED_EVENTS: dict[str, StripeEventType] = {
    spec.type: spec
    for spec in (
        # type, label, description, suggested trigger, email, customer, extract
        _type("checkout.session.completed", "Checkout completed",
              "A customer completed a Checkout session (a purchase or a new subscription).",
              "checkoutCompleted", checkout_email, customer_of, checkout_extract),
        _type("checkout.session.async_payment_succeeded", "Checkout payment succeeded",
              "A delayed Checkout payment (a bank debit, a voucher) went through.",
              "asyncPaymentSucceeded", checkout_email, customer_of, checkout_extract),
        _type("checkout.session.async_payment_failed", "Checkout payment failed",
              "A delayed Checkout payment (a bank debit, a voucher) failed.",
              "asyncPaymentFailed", checkout_email, customer_of, checkout_extract),
        _type("customer.created", "Customer created", "A new customer was created in Stripe.",
              "newStripeCustomer", customer_email, customer_object_id, customer_extract),
        _type("customer.updated", "Customer updated",
              "A customer's details changed, such as their name, email or delinquency.",
              "", customer_email, customer_object_id, customer_extract),
        _type("customer.deleted", "Customer deleted",
              "A customer was deleted in Stripe: the contact is unsubscribed, or deleted (see Options).",
              "customerDeleted", customer_email, customer_object_id, customer_extract),
        _type("customer.subscription.created", "Subscription created",
              "A customer started a subscription (trialing, active or incomplete).",
              "subscriptionCreated", no_email, customer_of, subscription_extract),
        _type("customer.subscription.updated", "Subscription updated",
              "A subscription changed. Every update syncs the billing state; its events fire only when the plan "
              "changed (price or quantity), not on a renewal or a status change.",
              "planChanged", no_email, customer_of, subscription_extract),
        _type("customer.subscription.deleted", "Subscription canceled",
              "A subscription ended: canceled now, at the end of its period, or after failed payments.",
              "subscriptionCanceled", no_email, customer_of, subscription_extract),
        _type("customer.subscription.paused", "Subscription paused", "A subscription was paused.",
              "subscriptionPaused", no_email, customer_of, subscription_extract),
        _type("customer.subscription.resumed", "Subscription resumed", "A paused subscription was resumed.",
              "subscriptionResumed", no_email, customer_of, subscription_extract),
        _type("customer.subscription.trial_will_end", "Trial ending",
              "A subscription's trial ends in three days (or now, when the trial was ended early).",
              "trialEnding", no_email, customer_of, subscription_extract),
        _type("invoice.paid", "Invoice paid", "An invoice was paid: a successful payment.",
              "successfulPayment", invoice_email, customer_of, invoice_extractor("amount_paid")),
        _type("invoice.payment_failed", "Invoice payment failed", "A payment attempt on an invoice failed.",
              "failedPayment", invoice_email, customer_of, _invoice_due),
        _type("invoice.payment_action_required", "Payment action required",
              "A payment needs the customer to confirm it (3D Secure, SCA) before it can go through.",
              "paymentActionRequired", invoice_email, customer_of, _invoice_due),
        _type("invoice.upcoming", "Invoice upcoming",
              "A subscription will renew soon (sent some days before the invoice is created).",
              "upcomingInvoice", invoice_email, customer_of, _invoice_due),
        _type("charge.refunded", "Charge refunded", "A charge was refunded, fully or in part.",
              "chargeRefunded", charge_email, customer_of, charge_extract),
        _type("charge.dispute.created", "Dispute opened", "A customer disputed a charge with their bank.",
              "disputeCreated", dispute_email, dispute_customer, dispute_extract),
        _type("charge.dispute.closed", "Dispute closed", "A dispute was won, lost or withdrawn.",
              "disputeClosed", dispute_email, dispute_customer, dispute_extract),
        _type("quote.finalized", "Quote finalized", "A quote was finalized and can be sent to the customer.",
              "quoteFinalized", no_email, customer_of, quote_extract),
        _type("quote.accepted", "Quote accepted", "A customer accepted a quote.",
              "quoteAccepted", no_email, customer_of, quote_extract),
        _type("quote.canceled", "Quote canceled", "A quote was canceled.",
              "quoteCanceled", no_email, customer_of, quote_extract),
    )
}  # fmt: skip

EVENT_TYPE_CHOICES = [(spec.type, spec.type) for spec in SUPPORTED_EVENTS.values()]
