"""What Stripe objects say about a contact's billing (`contacts.billing.BillingUpdate`), read from a webhook's
object or an imported one alike."""

from typing import Any

from contacts.billing import BILLING, BillingUpdate

from .stripe_readers import amount, as_dict, as_list, flag, integer, iso_time, major_units, ref, text, timestamp

# Months per one billing interval of each kind: an amount per interval × this = per month.
PER_MONTH = {"day": 365 / 12, "week": 52 / 12, "month": 1, "year": 1 / 12}


def item_price(item: dict) -> dict:
    """An item's price; before prices (API versions before 2020) its plan, which carries the same fields
    under other names (`amount`, `interval`)."""
    return as_dict(item.get("price")) or as_dict(item.get("plan"))


def _interval(price: dict) -> tuple[str, int]:
    recurring = as_dict(price.get("recurring"))
    interval = text(recurring.get("interval")) or text(price.get("interval"))
    count = integer(recurring.get("interval_count")) or integer(price.get("interval_count")) or 1
    return interval, max(count, 1)


def unit_amount(price: dict) -> int | None:
    found = amount(price.get("unit_amount"))
    return found if found is not None else amount(price.get("amount"))


def _metered(price: dict) -> bool:
    return text(as_dict(price.get("recurring")).get("usage_type") or price.get("usage_type")) == "metered"


def subscription_items(subscription: dict) -> list[dict]:
    items = [as_dict(item) for item in as_list(as_dict(subscription.get("items")).get("data"))]
    if not items and as_dict(subscription.get("plan")):  # a subscription of the plans era, with no items
        items = [{"plan": subscription["plan"], "quantity": subscription.get("quantity")}]
    return items


def plan_price(subscription: dict) -> dict:
    """The price that names a subscription's plan: its first item's."""
    return item_price((subscription_items(subscription) or [{}])[0])


def _item_mrr(item: dict) -> float:
    price = item_price(item)
    unit, (interval, count) = unit_amount(price), _interval(price)
    if unit is None or interval not in PER_MONTH or _metered(price):
        return 0.0  # tiered or metered prices have no fixed amount to count
    quantity = integer(item.get("quantity"))
    quantity = 1 if quantity is None else quantity
    return unit * quantity * PER_MONTH[interval] / count


def period_end_of(subscription: dict) -> int | None:
    """The current period's end: on the subscription before API version 2025-03-31 (basil), on its items since."""
    first = (subscription_items(subscription) or [{}])[0]
    return timestamp(subscription.get("current_period_end")) or timestamp(first.get("current_period_end"))


def plan_name(price: dict) -> str:
    """The price's nickname, else its product's name when the product was expanded, else the price id."""
    product = as_dict(price.get("product"))
    return text(price.get("nickname")) or text(product.get("name")) or text(price.get("name")) or ref(price)


# Which of a subscription's events comes later when two share a second (contacts.billing.BillingUpdate.rank).
RANKS = {"customer.subscription.created": 0, "customer.subscription.deleted": 2}


def subscription_update(subscription: dict, *, event_type: str = "") -> BillingUpdate | None:
    """The snapshot of one subscription: its first item's plan, and MRR summed over all its items."""
    subscription_id = ref(subscription)
    if not subscription_id:
        return None
    items = subscription_items(subscription)
    price = plan_price(subscription)
    currency = (text(subscription.get("currency")) or text(price.get("currency"))).lower()
    interval, _ = _interval(price)
    status = text(subscription.get("status"))
    period_end = period_end_of(subscription)
    mrr = sum(_item_mrr(item) for item in items)
    values: dict[str, Any] = {
        "created": timestamp(subscription.get("created")) or 0,
        "subscriptionStatus": status or None,
        "planName": plan_name(price) or None,
        "planId": ref(price) or None,
        "planInterval": interval or None,
        "planAmount": major_units(unit_amount(price), currency),
        "currency": currency or None,
        "mrr": (major_units(mrr, currency) or 0) if status in BILLING else 0,
        "trialEnd": iso_time(subscription.get("trial_end")),
        "currentPeriodEnd": iso_time(period_end),
        "canceledAt": iso_time(subscription.get("canceled_at")) or iso_time(subscription.get("ended_at")),
        "cancelAtPeriodEnd": flag(subscription.get("cancel_at_period_end")),
    }
    return BillingUpdate(kind="subscription", object_id=subscription_id, values=values, rank=RANKS.get(event_type, 1))


def customer_update(customer: dict) -> BillingUpdate | None:
    delinquent = flag(customer.get("delinquent"))
    if delinquent is None:
        return None
    return BillingUpdate(kind="customer", object_id=ref(customer), values={"delinquent": delinquent})


def invoice_paid_update(invoice: dict, *, event_created: int | None) -> BillingUpdate | None:
    """A paid invoice: its amount counts once in the lifetime value, however often it is seen."""
    invoice_id = ref(invoice)
    paid = amount(invoice.get("amount_paid"))
    if not invoice_id or paid is None:
        return None
    paid_at = timestamp(as_dict(invoice.get("status_transitions")).get("paid_at")) or event_created
    currency = text(invoice.get("currency")).lower()
    return BillingUpdate(
        kind="invoice_paid",
        object_id=invoice_id,
        values={"amount": major_units(paid, currency), "paidAt": iso_time(paid_at)},
    )


def payment_failed_update(*, event_created: int | None) -> BillingUpdate | None:
    failed_at = iso_time(event_created)
    return BillingUpdate(kind="payment_failed", object_id="", values={"failedAt": failed_at}) if failed_at else None
