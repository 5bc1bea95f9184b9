"""Syncing a contact from Stripe: matched by email, by the email it moved from, or by its Stripe customer."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.models import Team

from ..billing import BillingUpdate, billing_fold
from ..changes import changes_send, contact_state, state_changes
from ..models import Contact
from ..signals import contacts_created
from .lists import contact_lists_change

SOURCE_STRIPE = "Stripe webhook"


def name_split(full_name: str | None) -> tuple[str, str]:
    """Stripe names are one string: the first word is the first name, the rest the last name."""
    parts = (full_name or "").split(None, 1)
    if not parts:
        return "", ""
    return parts[0], parts[1].strip() if len(parts) > 1 else ""


def _names(full_name: str | None) -> tuple[str, str]:
    """`name_split`, cut to the columns' size (Stripe allows more)."""
    first_name, last_name = name_split(full_name)
    return first_name[:150], last_name[:150]


def _billing_at(event_created: datetime | None) -> int:
    """When an event's billing snapshots are dated: the event's `created`, else now."""
    return int((event_created or timezone.now()).timestamp())


def email_moving(email: str, previous_email: str) -> bool:
    """Whether a customer's event moves its contact from `previous_email` to `email`."""
    return bool(previous_email) and previous_email.lower() != email.lower()


def _locked(team: Team, email: str, livemode: bool = True) -> Contact | None:
    return Contact.objects.select_for_update(no_key=True).filter(team=team, livemode=livemode).with_email(email).first()


@dataclass(frozen=True)
class SyncResult:
    contact: Contact
    created: bool
    applied: bool  # False when the event was older than what the contact already holds
    # The contact's Stripe customer once this event was applied (a batch's contact may change after it).
    stripe_customer_id: str = ""


def contact_sync(
    *,
    team: Team,
    email: str,
    full_name: str = "",
    stripe_customer_id: str = "",
    event_created: datetime | None = None,
    previous_email: str = "",
    source: str = SOURCE_STRIPE,
    livemode: bool = True,
    new_user_group: str = "",
    new_list_id: int | None = None,
    billing: tuple[BillingUpdate, ...] | list[BillingUpdate] = (),
) -> SyncResult:
    """Match a contact by team + email (case-insensitive), create it if missing, and apply a name.

    - `livemode` false (a Stripe test-mode event) matches and creates test contacts only: test data
      never changes a live contact.

    - A name is split at its first whitespace run; a known first or last name is never replaced by an
      empty one.
    - An event older than the last one applied (`event_created`) does not change name, email or
      customer id; it only fills fields that are still empty.
    - `previous_email` (a customer's email change) moves the existing contact to the new address,
      unless the new address already has a contact of its own.
    - A contact it creates gets `new_user_group` and joins the mailing list `new_list_id` (an endpoint's
      options); existing contacts keep theirs.
    - `billing` (the event's Stripe billing snapshots, at `event_created`) is applied in the same write.
    """
    email = (email or "").strip()
    if not email:
        raise ValueError("contact_sync needs an email")
    previous_email = (previous_email or "").strip()
    first_name, last_name = _names(full_name)
    billing_at = _billing_at(event_created)
    with transaction.atomic():
        contact = _match(team, livemode, email, previous_email, stripe_customer_id, event_created)
        created = False
        if contact is None:
            contact, created = _create(
                Contact(
                    team=team,
                    livemode=livemode,
                    email=email,
                    first_name=first_name,
                    last_name=last_name,
                    stripe_customer_id=stripe_customer_id,
                    stripe_event_created=event_created,
                    source=source,
                    user_group=new_user_group[:120],
                ),
                billing,
                billing_at,
            )
            if created:
                if new_list_id is not None:
                    contact_lists_change(contact=contact, join=[new_list_id])
                contacts_created.send(sender=Contact, contacts=[contact])
                return SyncResult(contact=contact, created=True, applied=True)

        before = contact_state(contact)
        newer = _fold(contact, first_name, last_name, stripe_customer_id, event_created, billing, billing_at)
        contact.save()
        changes_send([(contact, state_changes(before, contact))])
        return SyncResult(contact=contact, created=False, applied=newer)


def _match(
    team: Team, livemode: bool, email: str, previous_email: str, customer_id: str, event_created
) -> Contact | None:
    """The contact this event is about, locked, found with one query over its possible keys:
    1. the email, case-insensitively;
    2. the previous email of a customer's email change, which moves that contact to the new address
       (unless the change is older than what the contact holds);
    3. the Stripe customer, for an older event at an address the customer has since left (Stripe
       retried it late): it belongs to the contact that moved on, not to a new one at the old address.
    """
    keys = {email.lower()}
    if email_moving(email, previous_email):
        keys.add(previous_email.lower())
    matches = Q(email_lower__in=keys)
    if customer_id:
        matches |= Q(stripe_customer_id=customer_id, stripe_event_created__isnull=False)
    candidates = list(
        Contact.objects.select_for_update(no_key=True)
        .annotate(email_lower=Lower("email"))
        .filter(matches, team=team, livemode=livemode)
        .order_by("id")
    )
    return _choose(candidates, email, previous_email, customer_id, event_created)


def _choose(
    candidates: Sequence[Contact], email: str, previous_email: str, customer_id: str, event_created: datetime | None
) -> Contact | None:
    """`_match`'s choice among the contacts its keys found (of one team and mode), in memory: also what a batch
    (`contacts_sync`) does with the contacts it locked."""
    moving = email_moving(email, previous_email)
    by_email = {_lower(c): c for c in candidates}
    if email.lower() in by_email:
        return by_email[email.lower()]
    if moving and previous_email.lower() in by_email:
        contact = by_email[previous_email.lower()]
        if not _is_older(event_created, contact):
            contact.email = email
            return contact
    # Only a Stripe-dated contact can be the customer's latest (and be older than this event).
    by_customer = [
        (c.stripe_event_created, c)
        for c in candidates
        if customer_id and c.stripe_customer_id == customer_id and c.stripe_event_created is not None
    ]
    if by_customer:
        _, latest = max(by_customer, key=lambda dated: dated[0])
        if _is_older(event_created, latest):
            return latest
    return None


def _lower(contact: Contact) -> str:
    """The contact's email as the database lowers it, when the query gave it (`email_lower`)."""
    return getattr(contact, "email_lower", None) or contact.email.lower()


def _fold(
    contact: Contact,
    first_name: str,
    last_name: str,
    customer_id: str,
    event_created: datetime | None,
    billing: tuple[BillingUpdate, ...] | list[BillingUpdate],
    billing_at: int,
) -> bool:
    """Apply one event to a matched contact in memory (the caller saves); False when the event was older than
    what the contact holds, and only filled what was empty."""
    newer = not _is_older(event_created, contact)
    _apply(contact, first_name, "first_name", replace=newer)
    _apply(contact, last_name, "last_name", replace=newer)
    _apply(contact, customer_id, "stripe_customer_id", replace=newer)
    if newer and event_created is not None:
        contact.stripe_event_created = event_created
    billing_fold(contact, billing, billing_at)
    return newer


def _is_older(event_created: datetime | None, contact: Contact) -> bool:
    return (
        event_created is not None
        and contact.stripe_event_created is not None
        and event_created < contact.stripe_event_created
    )


def _apply(contact: Contact, value: str, field: str, *, replace: bool) -> None:
    if value and (replace or not getattr(contact, field)):
        setattr(contact, field, value)


def _create(contact: Contact, billing, billing_at: int) -> tuple[Contact, bool]:
    """Insert a new contact with its billing state in one write; or, when another worker created it between our
    look-up and this insert, theirs (locked), to which the caller applies the event."""
    billing_fold(contact, billing, billing_at)
    try:
        with transaction.atomic():
            contact.save(force_insert=True)
            return contact, True
    except IntegrityError:
        theirs = _locked(contact.team, contact.email, contact.livemode)
        if theirs is None:
            raise
        return theirs, False


@dataclass(frozen=True)
class ContactKey:
    """What can match one event's contact: its email (and the one it moved from), or its Stripe customer."""

    team_id: int
    livemode: bool
    emails: tuple[str, ...] = ()
    customer_id: str = ""


def contacts_lock(*, keys: list[ContactKey], ids: Iterable[int] = ()) -> list[Contact]:
    """Lock every existing contact these keys can match (and the contacts `ids`: an import's userId matches), in
    id order, in one statement (FOR NO KEY UPDATE,
    which leaves the foreign-key checks of other inserts free to go on), and return them. Called first in a
    batch's transaction: two batches that each take all their locks up front, in the same order, cannot
    deadlock over contacts, whatever order their deliveries came in. On PostgreSQL the emails are locked first
    (advisory locks, in sorted order), so creating the same new contacts cannot deadlock either. A later
    look-up of one event locks the same rows again, at no cost."""
    groups: dict[tuple[int, bool], tuple[set[str], set[str]]] = {}
    for key in keys:
        emails, customers = groups.setdefault((key.team_id, key.livemode), (set(), set()))
        emails.update(email.strip().lower() for email in key.emails if email)
        if key.customer_id:
            customers.add(key.customer_id)
    if not groups:
        return []
    matches = Q(pk__in=list(ids))
    for (team_id, livemode), (emails, customers) in groups.items():
        matches |= Q(team_id=team_id, livemode=livemode) & (
            Q(email_lower__in=emails) | Q(stripe_customer_id__in=customers)
        )
    if connection.vendor == "postgresql":
        # The addresses new contacts may be inserted under, locked in one global order before any row: two
        # batches creating the same contacts wait for each other here, not on the unique index in opposite
        # orders. Transaction-scoped, so the commit or rollback releases them.
        names = sorted(f"{t}:{int(live)}:{email}" for (t, live), (emails, _) in groups.items() for email in emails)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(h) FROM "
                "(SELECT hashtextextended(k, 0) AS h FROM unnest(%s::text[]) AS k ORDER BY k) AS ordered",
                [names],
            )
    locked = Contact.objects.select_for_update(no_key=True).annotate(email_lower=Lower("email")).filter(matches)
    return list(locked.order_by("id"))


@dataclass(frozen=True)
class SyncItem:
    """One Stripe event's contact, for `contacts_sync`: what `contact_sync` takes, with an email and no move."""

    team_id: int
    livemode: bool
    email: str
    full_name: str = ""
    customer_id: str = ""
    event_created: datetime | None = None
    new_user_group: str = ""
    new_list_id: int | None = None
    billing: tuple[BillingUpdate, ...] = ()


def contact_sync_item(*, item: SyncItem, previous_email: str = "") -> SyncResult:
    """`contact_sync` for one SyncItem (the one-by-one path of a batch), with the email it moved from."""
    return contact_sync(
        team=Team(id=item.team_id),
        livemode=item.livemode,
        email=item.email,
        full_name=item.full_name,
        stripe_customer_id=item.customer_id,
        event_created=item.event_created,
        previous_email=previous_email,
        new_user_group=item.new_user_group,
        new_list_id=item.new_list_id,
        billing=item.billing,
    )


# What an event can change on an existing contact (`_fold`).
_SYNCED_FIELDS = ["first_name", "last_name", "stripe_customer_id", "stripe_event_created", "stripe_billing"]


def contacts_sync(*, items: list[SyncItem], locked: list[Contact]) -> list[SyncResult]:
    """`contact_sync` for a batch, in a few statements: each item, in order, is matched among `locked` (what
    `contacts_lock` returned for these items' keys, in this transaction) and the contacts created by the items
    before it, exactly as `contact_sync` matches, creates and applies it; then the new contacts are inserted in
    one statement, the changed ones updated in one more, and `contacts_created` is sent once. Items whose email
    is moving (a previous email) take `contact_sync`. A unique violation (another writer created one of these
    contacts meanwhile: only the drains take the advisory locks) raises IntegrityError: the caller's savepoint
    undoes the batch, which it then gives to `contact_sync` one by one."""
    by_email: dict[tuple[int, bool, str], Contact] = {}
    by_customer: dict[tuple[int, bool, str], list[Contact]] = {}

    def index(contact: Contact) -> None:
        by_email[(contact.team_id, contact.livemode, _lower(contact))] = contact
        if contact.stripe_customer_id:
            by_customer.setdefault((contact.team_id, contact.livemode, contact.stripe_customer_id), []).append(contact)

    for existing in locked:
        index(existing)
    created: dict[int, Contact] = {}  # by id(): a new contact, inserted at the end in its final state
    order: dict[int, int] = {}  # by id(): a new contact's place among the new ones
    new_lists: dict[int, int] = {}  # by id(): the list a new contact joins
    changed: dict[int, Contact] = {}  # by pk
    befores: dict[int, dict] = {}  # by pk: an existing contact as it was (contacts.changes)
    results = []
    now = timezone.now()
    for item in items:
        email = item.email.strip()
        first_name, last_name = _names(item.full_name)
        billing_at = _billing_at(item.event_created)
        group = (item.team_id, item.livemode)
        candidates = [c for c in (by_email.get((*group, email.lower())),) if c is not None]
        candidates += by_customer.get((*group, item.customer_id), []) if item.customer_id else []
        # In _match's order (by id; new contacts after, in the order they were made): _choose breaks ties by it.
        candidates.sort(key=lambda c: (c.pk is None, c.pk or 0, order.get(id(c), 0)))
        contact = _choose(candidates, email, "", item.customer_id, item.event_created)
        if contact is None:
            contact = Contact(
                team_id=item.team_id,
                livemode=item.livemode,
                email=email,
                first_name=first_name,
                last_name=last_name,
                stripe_customer_id=item.customer_id,
                stripe_event_created=item.event_created,
                source=SOURCE_STRIPE,
                user_group=item.new_user_group[:120],
            )
            billing_fold(contact, item.billing, billing_at)
            created[id(contact)] = contact
            order[id(contact)] = len(order)
            if item.new_list_id is not None:
                new_lists[id(contact)] = item.new_list_id
            index(contact)
            results.append(
                SyncResult(contact=contact, created=True, applied=True, stripe_customer_id=contact.stripe_customer_id)
            )
            continue
        had_customer = contact.stripe_customer_id
        if contact.pk is not None and contact.pk not in befores:
            befores[contact.pk] = contact_state(contact)
        applied = _fold(contact, first_name, last_name, item.customer_id, item.event_created, item.billing, billing_at)
        if contact.stripe_customer_id != had_customer:
            index(contact)
        if id(contact) not in created:
            changed[contact.pk] = contact
        results.append(
            SyncResult(contact=contact, created=False, applied=applied, stripe_customer_id=contact.stripe_customer_id)
        )
    new = list(created.values())
    Contact.objects.bulk_create(new)  # the ids come back (PostgreSQL, SQLite 3.35+): the events need them
    for contact in changed.values():
        contact.updated_at = now
    Contact.objects.bulk_update(list(changed.values()), [*_SYNCED_FIELDS, "properties", "updated_at"])
    for contact in new:
        if id(contact) in new_lists:
            contact_lists_change(contact=contact, join=[new_lists[id(contact)]])
    if new:
        contacts_created.send(sender=Contact, contacts=new)
    changes_send([(contact, state_changes(befores[pk], contact)) for pk, contact in changed.items()])
    return results


def contact_for_customer(*, team: Team, customer_id: str, livemode: bool = True) -> Contact | None:
    """The contact carrying this Stripe customer id, locked (the newest one, should an email change have left
    two): how an event whose object has no email (a subscription, a quote) finds its contact."""
    if not customer_id:
        return None
    return (
        Contact.objects.select_for_update(no_key=True)
        .filter(team=team, livemode=livemode, stripe_customer_id=customer_id)
        .order_by(F("stripe_event_created").desc(nulls_last=True), "-id")
        .first()
    )


def contact_for_stripe(*, team: Team, email: str, customer_id: str, livemode: bool = True) -> Contact | None:
    """The contact a Stripe customer is, by its customer id, else by its email when that contact carries no
    other customer (one who signed up again as a new customer is not the deleted one); locked. Creates nothing."""
    contact = contact_for_customer(team=team, customer_id=customer_id, livemode=livemode)
    if contact is None and email:
        contact = _locked(team, email, livemode)
        if contact is not None and contact.stripe_customer_id not in {"", customer_id}:
            return None
    return contact
