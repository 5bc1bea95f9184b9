"""Syncing a contact from Stripe: matched by email, by the email it moved from, or by its Stripe customer."""

from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.models import Team

from ..billing import BillingUpdate, billing_fold
from ..models import Contact
from ..signals import contact_created
from .lists import contact_lists_change

SOURCE_STRIPE = "Stripe webhook"


def name_split(full_name: str | None) -> tuple[str, str]:
    """Stripe names are one string: the first word is the first name, the rest the last name."""
    parts = (full_name or "").split(None, 1)
    if not parts:
        return "", ""
    return parts[0], parts[1].strip() if len(parts) > 1 else ""


def _locked(team: Team, email: str, livemode: bool = True) -> Contact | None:
    return Contact.objects.select_for_update(no_key=True).filter(team=team, livemode=livemode).with_email(email).first()


@dataclass(frozen=True)
class SyncResult:
    contact: Contact
    created: bool
    applied: bool  # False when the event was older than what the contact already holds


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
    first_name, last_name = name_split(full_name)
    first_name, last_name = first_name[:150], last_name[:150]  # the columns' size; Stripe allows more

    billing_at = int(event_created.timestamp()) if event_created else int(timezone.now().timestamp())
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
                contact_created.send(sender=Contact, contact=contact)
                return SyncResult(contact=contact, created=True, applied=True)

        newer = not _is_older(event_created, contact)
        _apply(contact, first_name, "first_name", replace=newer)
        _apply(contact, last_name, "last_name", replace=newer)
        _apply(contact, stripe_customer_id, "stripe_customer_id", replace=newer)
        if newer and event_created is not None:
            contact.stripe_event_created = event_created
        billing_fold(contact, billing, billing_at)
        contact.save()
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
    moving = bool(previous_email) and previous_email.lower() != email.lower()
    if moving:
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
    by_email = {c.email_lower: c for c in candidates}
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


def contacts_lock(*, keys: list[ContactKey]) -> None:
    """Lock every existing contact these keys can match, in id order, in one statement (FOR NO KEY UPDATE,
    which leaves the foreign-key checks of other inserts free to go on). Called first in a batch's
    transaction: two batches that each take all their locks up front, in the same order, cannot deadlock
    over contacts, whatever order their deliveries came in. On PostgreSQL the emails are locked first (advisory
    locks, in sorted order), so creating the same new contacts cannot deadlock either. The later look-ups of
    each event lock the same rows again, at no cost."""
    groups: dict[tuple[int, bool], tuple[set[str], set[str]]] = {}
    for key in keys:
        emails, customers = groups.setdefault((key.team_id, key.livemode), (set(), set()))
        emails.update(email.strip().lower() for email in key.emails if email)
        if key.customer_id:
            customers.add(key.customer_id)
    matches = Q(pk__in=[])
    for (team_id, livemode), (emails, customers) in groups.items():
        matches |= Q(team_id=team_id, livemode=livemode) & (
            Q(email_lower__in=emails) | Q(stripe_customer_id__in=customers)
        )
    if not groups:
        return
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
    locked = Contact.objects.select_for_update(no_key=True).alias(email_lower=Lower("email")).filter(matches)
    list(locked.order_by("id").values_list("id", flat=True))


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
