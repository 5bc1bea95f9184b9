"""The drain's set-based path: most of a batch in a few statements.

`processing` claims a batch and locks its contacts; the deliveries here are those that can be processed together
(an email, no move from another contact, no deletion): their contacts in one insert and one update, their events,
runs and wake-ups in a few more, one update to mark them processed. The rest go one by one, in `processing`.
Also what both paths share: an endpoint's options, a delivery's contact key, sync item and event properties.
"""

import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from contacts.services import ContactKey, SyncItem, contacts_sync, email_moving
from loops.services import Fire, events_fire_many
from loopsync import work

from ..models import Delivery, Endpoint, EventSetting
from ..stripe_events import Extracted

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """What a batch needs of each endpoint and type setting, read with one query each."""

    user_group: str
    list_id: int | None
    customer_deleted: str
    api_key: str


def batch_settings(deliveries: list[Delivery]) -> tuple[dict[tuple[int, str], tuple[str, str]], dict[int, Options]]:
    pairs = {(delivery.endpoint_id, delivery.event_type) for delivery in deliveries}
    rows = EventSetting.objects.filter(
        endpoint_id__in={endpoint_id for endpoint_id, _ in pairs}, event_type__in={t for _, t in pairs}
    ).values_list("endpoint_id", "event_type", "trigger_event_name", "additional_event_name")
    triggers = {(endpoint_id, event_type): (name, extra) for endpoint_id, event_type, name, extra in rows}
    endpoints = Endpoint.objects.filter(id__in={d.endpoint_id for d in deliveries}).values_list(
        "id", "new_contact_user_group", "new_contact_list_id", "customer_deleted", "api_key"
    )
    return triggers, {row[0]: Options(*row[1:]) for row in endpoints}


def fire_properties(delivery: Delivery, extracted: Extracted, contact, customer_id: str | None = None) -> dict:
    """`customer_id`: the contact's Stripe customer as this event left it (default: as it is now)."""
    return {
        **extracted.properties,
        "stripe_event_id": delivery.stripe_event_id,
        "stripe_event_type": delivery.event_type,
        "stripe_customer_id": extracted.customer_id
        or (contact.stripe_customer_id if customer_id is None else customer_id),
        "livemode": contact.livemode,
    }


def fire_keys(key: str) -> tuple[str, str]:
    """The idempotency keys of a type's event and of its additional custom event."""
    return key, f"{key}:additional"


def sync_item(delivery: Delivery, extracted: Extracted, options: Options | None) -> SyncItem:
    return SyncItem(
        team_id=delivery.team_id,
        livemode=delivery.livemode,
        email=extracted.email,
        full_name=extracted.full_name,
        customer_id=extracted.customer_id,
        event_created=delivery.event_created,
        new_user_group=options.user_group if options else "",
        new_list_id=options.list_id if options else None,
        billing=extracted.billing,
    )


def _simple(delivery: Delivery, extracted: Extracted) -> bool:
    """An event the set-based path takes: it names an email, moves no contact from another, deletes nobody."""
    moving = email_moving(extracted.email, extracted.previous_email)
    return bool(extracted.email) and not moving and delivery.event_type != "customer.deleted"


def partition(
    ordered: list[Delivery], extracted: dict[int, Extracted], locked: list
) -> tuple[list[Delivery], list[Delivery]]:
    """(what the set-based path takes, what goes one by one, in delivery order). Keys (an email, a Stripe
    customer) are joined into groups that may be one contact: the keys of one event, and a locked contact's
    email and customer. A group with any event that goes one by one goes one by one as a whole, so each
    contact's events keep their order whichever key they reach it by."""
    parent: dict[tuple, tuple] = {}

    def find(key: tuple) -> tuple:
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def join(keys: list[tuple]) -> None:
        roots = [find(key) for key in keys]
        for root in roots[1:]:
            parent[root] = roots[0]

    def keys_of(team_id: int, livemode: bool, emails, customer_id: str) -> list[tuple]:
        keys = [(team_id, livemode, "email", email.strip().lower()) for email in emails if email]
        return keys + ([(team_id, livemode, "customer", customer_id)] if customer_id else [])

    for contact in locked:
        join(keys_of(contact.team_id, contact.livemode, [contact.email], contact.stripe_customer_id))
    delivery_keys = {}
    for delivery in ordered:
        key = contact_key(delivery, extracted[delivery.id])
        delivery_keys[delivery.id] = keys_of(key.team_id, key.livemode, key.emails, key.customer_id)
        join(delivery_keys[delivery.id])
    one_by_one = {
        find(key)
        for delivery in ordered
        if not _simple(delivery, extracted[delivery.id])
        for key in delivery_keys[delivery.id]
    }
    simple, rest = [], []
    for delivery in ordered:
        keys = delivery_keys[delivery.id]
        if _simple(delivery, extracted[delivery.id]) and not {find(key) for key in keys} & one_by_one:
            simple.append(delivery)
        else:
            rest.append(delivery)
    return simple, rest


def apply_batch(
    ordered: list[Delivery],
    extracted: dict[int, Extracted],
    triggers: dict[tuple[int, str], tuple[str, str]],
    options: dict[int, Options],
    locked: list,
) -> list[Delivery]:
    """Process the simple deliveries of a batch together, in the batch's transaction: their contacts in one
    insert and one update (contacts.services.contacts_sync), their events, runs and wake-ups in a few more
    (loops.services.events_fire_many), and one update marks them processed. Returns the deliveries left for the
    one-by-one path: the others, or all of them when the set-based path fails (a contact or an event key that
    another writer created meanwhile), after its savepoint has undone it."""
    simple, rest = partition(ordered, extracted, locked)
    if not simple:
        return rest
    try:
        with transaction.atomic():
            items = [sync_item(d, extracted[d.id], options.get(d.endpoint_id)) for d in simple]
            synced = contacts_sync(items=items, locked=locked)
            fires = []
            for delivery, result in zip(simple, synced, strict=True):
                found = extracted[delivery.id]
                if not found.fires:
                    continue
                names = triggers.get((delivery.endpoint_id, delivery.event_type), ("", ""))
                properties = fire_properties(delivery, found, result.contact, result.stripe_customer_id)
                for name, key in zip(names, fire_keys(delivery.stripe_event_id), strict=True):
                    if name:
                        fires.append(
                            Fire(
                                contact=result.contact,
                                name=name,
                                idempotency_key=key,
                                properties=properties,
                                source="stripe",
                                occurred_at=delivery.event_created,
                            )
                        )
            events_fire_many(fires=fires)
            Delivery.objects.filter(id__in=[d.id for d in simple], status=Delivery.Status.PROCESSING).update(
                status=Delivery.Status.PROCESSED, processed_at=timezone.now(), last_error="", next_attempt_at=None
            )
    except work.RELEASING_ERRORS:
        raise
    except IntegrityError as exc:  # another writer created one of these contacts or fired one of these keys
        logger.info("A batch of %s deliveries is processed one by one: %s", len(simple), exc)
        return ordered
    except Exception:  # the one-by-one path records what fails, delivery by delivery
        logger.warning("A batch of %s deliveries is processed one by one", len(simple), exc_info=True)
        return ordered
    return rest


def contact_key(delivery: Delivery, extracted: Extracted) -> ContactKey:
    emails = tuple(e for e in (extracted.email, extracted.previous_email) if e)
    return ContactKey(
        team_id=delivery.team_id, livemode=delivery.livemode, emails=emails, customer_id=extracted.customer_id
    )
