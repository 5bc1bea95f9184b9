"""Learning who an event is about when its object names only a Stripe customer (or a charge) that no contact
carries yet: with the endpoint's key, Stripe is asked for the customer's email, before the batch's
transaction opens (no network I/O inside one)."""

import dataclasses
import logging

from django.db.models import Q

from contacts.models import Contact

from ..models import Delivery
from ..stripe_api import StripeRefused, StripeUnavailable, charge_fetch, customer_fetch
from ..stripe_events import Extracted
from ..stripe_readers import ref, text
from .receiving import email_valid

logger = logging.getLogger(__name__)


def _known(deliveries: list[Delivery], extracted: dict[int, Extracted]) -> set[tuple[int, bool, str]]:
    """(team, livemode, customer id) of the customers named by these deliveries that a contact carries."""
    wanted = Q()
    for delivery in deliveries:
        found = extracted.get(delivery.id)
        if found and not found.email and found.customer_id:
            wanted |= Q(team_id=delivery.team_id, livemode=delivery.livemode, stripe_customer_id=found.customer_id)
    if not wanted:
        return set()
    return set(Contact.objects.filter(wanted).values_list("team_id", "livemode", "stripe_customer_id"))


def customers_unknown(
    *, deliveries: list[Delivery], extracted: dict[int, Extracted], api_keys: dict[int, str]
) -> list[Delivery]:
    """The deliveries about a customer no contact carries, whose endpoint has a key to ask Stripe with."""
    pending = [d for d in deliveries if d.id in extracted and not extracted[d.id].email and d.endpoint_id in api_keys]
    if not pending:
        return []
    known = _known(pending, extracted)
    return [
        d
        for d in pending
        if not (extracted[d.id].customer_id and (d.team_id, d.livemode, extracted[d.id].customer_id) in known)
    ]


def customers_resolve(
    *, deliveries: list[Delivery], extracted: dict[int, Extracted], api_keys: dict[int, str]
) -> tuple[dict[int, Extracted], dict[int, str]]:
    """`extracted`, where an event about an unknown customer gets the email Stripe has for it, and the
    deliveries whose look-up Stripe could not answer now (id → why), left out, to be retried."""
    resolved, unanswered = dict(extracted), {}
    for delivery in customers_unknown(deliveries=deliveries, extracted=extracted, api_keys=api_keys):
        found = extracted[delivery.id]
        try:
            resolved[delivery.id] = _ask_stripe(found, api_keys[delivery.endpoint_id])
        except StripeUnavailable as exc:
            unanswered[delivery.id] = f"Looking up the Stripe customer: {exc}"
            del resolved[delivery.id]
        except StripeRefused as exc:  # the key was revoked or narrowed since it was saved: stays unknown
            logger.warning("Delivery %s: Stripe refused the customer look-up: %s", delivery.id, exc)
    return resolved, unanswered


def _ask_stripe(found: Extracted, api_key: str) -> Extracted:
    customer_id = found.customer_id
    if not customer_id and found.charge_id:
        charge = charge_fetch(api_key=api_key, charge_id=found.charge_id) or {}
        customer_id = ref(charge.get("customer"))
        if not customer_id:
            return found
        found = dataclasses.replace(found, customer_id=customer_id)
    customer = customer_fetch(api_key=api_key, customer_id=customer_id) or {}
    email = text(customer.get("email"))
    if not email or not email_valid(email):
        return found
    return dataclasses.replace(found, email=email, full_name=found.full_name or text(customer.get("name")))
