"""Contact use cases. Stripe and every other source write contacts only through here."""

from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

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
        contact = _match(team, email, previous_email, stripe_customer_id, event_created)
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


def _match(team: Team, email: str, previous_email: str, customer_id: str, event_created) -> Contact | None:
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
        Contact.objects.select_for_update()
        .annotate(email_lower=Lower("email"))
        .filter(matches, team=team)
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
    by_customer = [c for c in candidates if customer_id and c.stripe_customer_id == customer_id]
    if by_customer:
        latest = max(by_customer, key=lambda c: c.stripe_event_created)
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


SOURCE_APP = "Added in the app"


def contact_save(*, team: Team, form) -> Contact:
    """Create or update a contact from a valid ContactForm. A race on the unique email is reported on
    the form's email field instead of a server error."""
    contact = form.save(commit=False)
    contact.team = team
    contact.properties = form.cleaned_data.get("properties") or {}
    if not contact.pk:
        contact.source = SOURCE_APP
    try:
        with transaction.atomic():
            contact.save()
    except IntegrityError:
        form.add_error("email", "A contact with this email is already in your audience.")
        raise
    return contact


def contact_set_subscribed(*, contact: Contact, subscribed: bool) -> Contact:
    Contact.objects.filter(pk=contact.pk).update(subscribed=subscribed, updated_at=timezone.now())
    contact.subscribed = subscribed
    return contact


def contact_delete(*, contact: Contact) -> None:
    contact.delete()
