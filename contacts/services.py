"""Contact use cases. Stripe and every other source write contacts only through here."""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.models import Team
from loopsync.ids import parse_id

from .models import Contact, ContactProperty, ListMembership, MailingList

SOURCE_STRIPE = "Stripe webhook"


def name_split(full_name: str | None) -> tuple[str, str]:
    """Stripe names are one string: the first word is the first name, the rest the last name."""
    parts = (full_name or "").split(None, 1)
    if not parts:
        return "", ""
    return parts[0], parts[1].strip() if len(parts) > 1 else ""


def _locked(team: Team, email: str) -> Contact | None:
    return Contact.objects.select_for_update().filter(team=team).with_email(email).first()


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


# --- the public API's writes (Loops-compatible) ----------------------------------------------------

SOURCE_API = "API"
# Loops' names for the standard fields, and ours.
STANDARD_FIELDS = {
    "email": "email",
    "firstName": "first_name",
    "lastName": "last_name",
    "source": "source",
    "subscribed": "subscribed",
    "userGroup": "user_group",
    "userId": "user_id",
}
PROPERTY_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
RESERVED_KEYS = {*STANDARD_FIELDS, "id", "mailingLists", "optInStatus", "createdAt", "updatedAt", "eventName",
                 "eventProperties", "properties"}  # fmt: skip


class ContactConflict(Exception):
    """The email or userId belongs to another contact."""


def _property_type(value: Any) -> str:
    if isinstance(value, bool):
        return ContactProperty.Type.BOOLEAN
    if isinstance(value, int | float):
        return ContactProperty.Type.NUMBER
    return ContactProperty.Type.STRING


def property_values_clean(*, team: Team, values: dict[str, Any]) -> dict[str, Any]:
    """Custom property values checked against their declared types; an unknown key is declared with
    the type of its value. Raises ValidationError naming each bad key."""
    declared = dict(ContactProperty.objects.filter(team=team, key__in=list(values)).values_list("key", "type"))
    errors: dict[str, str] = {}
    for key, value in values.items():
        if key in RESERVED_KEYS or not PROPERTY_KEY.fullmatch(key):
            errors[key] = "A custom property name starts with a letter and has only letters, digits and _."
            continue
        if value is None:
            continue
        if isinstance(value, dict | list):
            errors[key] = "A property value is text, a number, true/false or null."
            continue
        kind = declared.get(key) or _property_type(value)
        if kind == ContactProperty.Type.NUMBER and (isinstance(value, bool) or not isinstance(value, int | float)):
            errors[key] = "This property is a number."
        elif kind == ContactProperty.Type.BOOLEAN and not isinstance(value, bool):
            errors[key] = "This property is true or false."
        elif kind == ContactProperty.Type.STRING and not isinstance(value, str):
            errors[key] = "This property is text."
        elif kind == ContactProperty.Type.DATE and not _is_date(value):
            errors[key] = "This property is a date: ISO 8601 text or a Unix time in milliseconds."
        if isinstance(value, str) and len(value) > 2000:
            errors[key] = "A property value is at most 2,000 characters."
    if errors:
        raise ValidationError(errors)
    for key, value in values.items():
        if key not in declared and value is not None:
            ContactProperty.objects.get_or_create(
                team=team, key=key, defaults={"label": key, "type": _property_type(value)}
            )
    return values


def _is_date(value: Any) -> bool:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return True
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def contact_property_create(*, team: Team, name: str, type: str) -> ContactProperty:
    name = name.strip()
    if name in RESERVED_KEYS or not PROPERTY_KEY.fullmatch(name):
        raise ValidationError({"name": "A property name starts with a letter and has only letters, digits and _."})
    if type not in ContactProperty.Type.values:
        raise ValidationError({"type": "The type is one of string, number, boolean or date."})
    try:
        with transaction.atomic():
            return ContactProperty.objects.create(team=team, key=name, label=name, type=type)
    except IntegrityError:
        raise ContactConflict(f"The property {name} exists already.") from None


def _lists_apply(team: Team, contact: Contact, mailing_lists: dict[str, bool]) -> None:
    if not mailing_lists:
        return
    ids = {}
    for raw, on in mailing_lists.items():
        list_id = parse_id(raw)
        if list_id is None:
            raise ValidationError({"mailingLists": f"No mailing list has the id {raw}."})
        ids[list_id] = bool(on)
    found = set(MailingList.objects.filter(team=team, id__in=list(ids)).values_list("id", flat=True))
    missing = sorted(set(ids) - found)
    if missing:
        raise ValidationError({"mailingLists": f"No mailing list has the id {missing[0]}."})
    for list_id, on in ids.items():
        if on:
            ListMembership.objects.get_or_create(team=team, mailing_list_id=list_id, contact=contact)
        else:
            ListMembership.objects.filter(mailing_list_id=list_id, contact=contact).delete()


class _Raced(Exception):
    """Another request created this contact between our look-up and our insert."""


def contact_upsert(
    *,
    team: Team,
    email: str = "",
    user_id: str = "",
    fields: dict[str, Any] | None = None,
    properties: dict[str, Any] | None = None,
    mailing_lists: dict[str, bool] | None = None,
    create_only: bool = False,
) -> tuple[Contact, bool]:
    """Create or update a contact as Loops' API does. Found by `user_id` first, then by `email`; with a
    `user_id` match a different `email` changes the contact's address. `fields` uses model names
    (first_name, …). Raises ContactConflict (409) and ValidationError (400).

    The contact's row is locked while it is changed, so two requests for one contact apply one after the
    other (no property lost); when two create the same new contact at once, the one that loses the race
    updates the winner's row instead."""
    email, user_id = email.strip(), user_id.strip()
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                return _upsert(team, email, user_id, fields or {}, properties or {}, mailing_lists or {}, create_only)
        except _Raced:
            if create_only or attempt == 2:
                raise ContactConflict("Email or userId is already on list.") from None
    raise AssertionError("unreachable")


def _upsert(team, email, user_id, fields, properties, mailing_lists, create_only) -> tuple[Contact, bool]:
    locked = Contact.objects.select_for_update()
    by_user = locked.filter(team=team, user_id=user_id).first() if user_id else None
    by_email = locked.filter(team=team).with_email(email).first() if email else None
    if create_only and (by_user or by_email):
        raise ContactConflict("Email or userId is already on list.")
    if by_user and by_email and by_user.pk != by_email.pk:
        raise ContactConflict("This email belongs to another contact.")
    contact = by_user or by_email
    created = contact is None
    if created:
        if not email:
            raise ValidationError({"email": "An email is needed to create a contact."})
        contact = Contact(team=team, email=email, source=SOURCE_API)
    elif email and contact.email.lower() != email.lower():
        contact.email = email
    if user_id:
        contact.user_id = user_id
    for name, value in fields.items():
        setattr(contact, name, value)
    if properties:
        cleaned = property_values_clean(team=team, values=properties)
        merged = {**(contact.properties or {}), **cleaned}
        contact.properties = {key: value for key, value in merged.items() if value is not None}
    try:
        with transaction.atomic():
            contact.save()
    except IntegrityError:
        if created:
            raise _Raced from None
        raise ContactConflict("Email or userId is already on list.") from None
    _lists_apply(team, contact, mailing_lists)
    return contact, created
