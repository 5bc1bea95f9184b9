"""Contact use cases. Stripe and every other source write contacts only through here."""

from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models.functions import Lower

from accounts.models import Team

from .models import Contact

SOURCE_STRIPE = "Stripe webhook"


def name_split(full_name: str | None) -> tuple[str, str]:
    """Stripe names are one string: the first word is the first name, the rest the last name."""
    parts = (full_name or "").split(None, 1)
    if not parts:
        return "", ""
    return parts[0], parts[1].strip() if len(parts) > 1 else ""


def _locked(team: Team, email: str) -> Contact | None:
    return (
        Contact.objects.select_for_update()
        .annotate(email_lower=Lower("email"))
        .filter(team=team, email_lower=email.lower())
        .first()
    )


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
) -> SyncResult:
    """Match a contact by team + email (case-insensitive), create it if missing, and apply a name.

    - A name is split at its first whitespace run; a known first or last name is never replaced by an
      empty one.
    - An event older than the last one applied (`event_created`) does not change name, email or
      customer id; it only fills fields that are still empty.
    - `previous_email` (a customer's email change) moves the existing contact to the new address,
      unless the new address already has a contact of its own.
    """
    email = (email or "").strip()
    if not email:
        raise ValueError("contact_sync needs an email")
    previous_email = (previous_email or "").strip()
    first_name, last_name = name_split(full_name)
    first_name, last_name = first_name[:150], last_name[:150]  # the columns' size; Stripe allows more

    with transaction.atomic():
        contact = _locked(team, email)
        if contact is None and previous_email and previous_email.lower() != email.lower():
            contact = _locked(team, previous_email)
            if contact is not None and _is_older(event_created, contact):
                contact = None  # a stale email change must not move the contact back
            elif contact is not None:
                contact.email = email
        if contact is None and stripe_customer_id:
            # An older event for an address the customer has since left (Stripe retried it late):
            # it belongs to the contact that moved on, not to a new contact at the old address.
            moved = (
                Contact.objects.select_for_update()
                .filter(team=team, stripe_customer_id=stripe_customer_id, stripe_event_created__isnull=False)
                .order_by("-stripe_event_created")
                .first()
            )
            if moved is not None and _is_older(event_created, moved):
                contact = moved
        created = False
        if contact is None:
            contact, created = _create(
                team=team,
                email=email,
                first_name=first_name,
                last_name=last_name,
                stripe_customer_id=stripe_customer_id,
                event_created=event_created,
                source=source,
            )
            if created:
                return SyncResult(contact=contact, created=True, applied=True)

        newer = not _is_older(event_created, contact)
        _apply(contact, first_name, "first_name", replace=newer)
        _apply(contact, last_name, "last_name", replace=newer)
        _apply(contact, stripe_customer_id, "stripe_customer_id", replace=newer)
        if newer and event_created is not None:
            contact.stripe_event_created = event_created
        contact.save()
        return SyncResult(contact=contact, created=False, applied=newer)


def _is_older(event_created: datetime | None, contact: Contact) -> bool:
    return (
        event_created is not None
        and contact.stripe_event_created is not None
        and event_created < contact.stripe_event_created
    )


def _apply(contact: Contact, value: str, field: str, *, replace: bool) -> None:
    if value and (replace or not getattr(contact, field)):
        setattr(contact, field, value)


def _create(*, team, email, first_name, last_name, stripe_customer_id, event_created, source) -> tuple[Contact, bool]:
    try:
        with transaction.atomic():
            contact = Contact.objects.create(
                team=team,
                email=email,
                first_name=first_name,
                last_name=last_name,
                stripe_customer_id=stripe_customer_id,
                stripe_event_created=event_created,
                source=source,
            )
            return contact, True
    except IntegrityError:
        # Another worker created it between our lookup and insert; use theirs.
        contact = _locked(team, email)
        if contact is None:
            raise
        return contact, False
