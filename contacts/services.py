"""Contact use cases. Stripe and every other source write contacts only through here."""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.models import Team
from loopsync.ids import parse_id

from .billing import BILLING_LABELS, BILLING_PROPERTIES, BillingUpdate, billing_fold
from .models import Contact, ContactProperty, ListMembership, MailingList, UnsubscribedBy

SOURCE_STRIPE = "Stripe webhook"


def name_split(full_name: str | None) -> tuple[str, str]:
    """Stripe names are one string: the first word is the first name, the rest the last name."""
    parts = (full_name or "").split(None, 1)
    if not parts:
        return "", ""
    return parts[0], parts[1].strip() if len(parts) > 1 else ""


def _locked(team: Team, email: str, livemode: bool = True) -> Contact | None:
    return Contact.objects.select_for_update().filter(team=team, livemode=livemode).with_email(email).first()


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
                    ListMembership.objects.get_or_create(team=team, mailing_list_id=new_list_id, contact=contact)
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
        Contact.objects.select_for_update()
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


def _create(contact: Contact, billing, billing_at: int) -> tuple[Contact, bool]:
    """Insert a new contact with its billing state in one write; or, when another worker created it between our
    look-up and this insert, theirs (locked), to which the caller applies the event."""
    billing_fold(contact, billing, billing_at)
    try:
        with transaction.atomic():
            contact.save(force_insert=True)
            return contact, True
    except IntegrityError:
        contact = _locked(contact.team, contact.email, contact.livemode)
        if contact is None:
            raise
        return contact, False


def contact_for_customer(*, team: Team, customer_id: str, livemode: bool = True) -> Contact | None:
    """The contact carrying this Stripe customer id, locked (the newest one, should an email change have left
    two): how an event whose object has no email (a subscription, a quote) finds its contact."""
    if not customer_id:
        return None
    return (
        Contact.objects.select_for_update()
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


SOURCE_APP = "Added in the app"


def contact_save(*, team: Team, form) -> Contact:
    """Create or update a contact from a valid ContactForm. A race on the unique email (IntegrityError) or
    the team's property cap (ValidationError) is reported on the form instead of a server error."""
    contact = form.save(commit=False)
    contact.team = team
    contact.properties = form.cleaned_data.get("properties") or {}
    try:  # typed and declared like the API's (the form checked them; this declares the new ones)
        property_values_clean(team=team, values=contact.properties)
    except ValidationError as exc:  # the team's cap was reached since the form's check
        form.add_error("properties", exc.messages)
        raise
    if not contact.pk:
        contact.source = SOURCE_APP
    was_subscribed = form.initial.get("subscribed", True) if contact.pk else True
    if was_subscribed and not contact.subscribed:
        contact.unsubscribed_by, contact.unsubscribed_at = Contact.UnsubscribedBy.TEAM, timezone.now()
    elif contact.subscribed and not was_subscribed:  # the form refuses this for a contact who used the link
        contact.unsubscribed_by, contact.unsubscribed_at = "", None
    try:
        with transaction.atomic():
            contact.save()
    except IntegrityError:
        form.add_error("email", "A contact with this email is already in your audience.")
        raise
    return contact


class ResubscribeRefused(ValidationError):
    """The contact unsubscribed with the link in an email: only they (or the API's suppression removal,
    with its quota) can undo it."""


# Whom a team member may resubscribe from the Audience page: only a contact a team member or the API
# unsubscribed. One who used the link, or whose unsubscribe was never attributed (before LoopSync recorded
# who did it), can resubscribe only themselves, or through the API's suppression removal.
RESUBSCRIBABLE_BY_TEAM = (UnsubscribedBy.TEAM, UnsubscribedBy.API)


def contact_set_subscribed(*, contact: Contact, subscribed: bool, by: str) -> Contact:
    """Subscribe or unsubscribe, recording who did it (`UnsubscribedBy`). A team member cannot resubscribe a
    contact who unsubscribed with the link (`ResubscribeRefused`); Loops has the same rule. The contact itself
    (`LINK`) and the API's suppression removal (`API`) can. Each change is one conditional UPDATE, so a link
    unsubscribe arriving at the same moment is never overwritten by a team member's resubscribe."""
    now = timezone.now()
    rows = Contact.objects.filter(pk=contact.pk)
    if subscribed:
        if by == UnsubscribedBy.TEAM:
            rows = rows.filter(Q(subscribed=True) | Q(unsubscribed_by__in=RESUBSCRIBABLE_BY_TEAM))
        changes = {"subscribed": True, "unsubscribed_by": "", "unsubscribed_at": None}
    else:  # already unsubscribed: who did it first, and when, stays
        rows = rows.filter(subscribed=True)
        changes = {"subscribed": False, "unsubscribed_by": by, "unsubscribed_at": now}
    if rows.update(**changes, updated_at=now) == 1:
        for field, value in changes.items():
            setattr(contact, field, value)
        return contact
    contact.refresh_from_db(fields=["subscribed", "unsubscribed_by", "unsubscribed_at"])
    if subscribed and resubscribe_refused(contact):
        raise ResubscribeRefused(RESUBSCRIBE_REFUSED)
    return contact


RESUBSCRIBE_REFUSED = (
    "This contact unsubscribed with the link in an email (or before LoopSync recorded who did it), so only "
    "they can resubscribe, from that link. Loops has the same rule."
)


def resubscribe_refused(contact: Contact) -> bool:
    """True when a team member may not resubscribe this contact (see RESUBSCRIBABLE_BY_TEAM)."""
    return not contact.subscribed and contact.unsubscribed_by not in RESUBSCRIBABLE_BY_TEAM


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
    the type of its value. Raises ValidationError naming each bad key, or the cap the request is over:
    CONTACT_PROPERTIES_PER_REQUEST keys in one request, CONTACT_PROPERTIES_PER_TEAM declared properties,
    PROPERTY_VALUE_MAX_CHARS characters in a value. Declares in the caller's transaction."""
    declared = property_values_validate(team=team, values=values)
    new = {key: _property_type(value) for key, value in values.items() if key not in declared and value is not None}
    if new:
        _properties_declare(team=team, types=new, values=values)
    return values


def property_values_validate(*, team: Team, values: dict[str, Any]) -> dict[str, str]:
    """What `property_values_clean` checks, without declaring anything (a form's validation). Returns the
    declared types of the keys that have one."""
    limit = settings.CONTACT_PROPERTIES_PER_REQUEST
    if len(values) > limit:  # before any query: a body of 20,000 keys costs what one of 101 does
        raise ValidationError(
            f"A request sets at most {limit:,} custom properties (CONTACT_PROPERTIES_PER_REQUEST); "
            f"this one has {len(values):,}."
        )
    declared = dict(ContactProperty.objects.filter(team=team, key__in=list(values)).values_list("key", "type"))
    declared.update({key: BILLING_PROPERTIES[key] for key in values if key in BILLING_PROPERTIES})
    _property_values_check(values, declared)
    return declared


def _property_values_check(values: dict[str, Any], declared: dict[str, str]) -> None:
    """ValidationError naming each key whose name or value is wrong (a key not in `declared` takes the type
    of its value)."""
    max_chars = settings.PROPERTY_VALUE_MAX_CHARS
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
        if isinstance(value, str) and len(value) > max_chars:
            errors[key] = f"A property value is at most {max_chars:,} characters (PROPERTY_VALUE_MAX_CHARS)."
    if errors:
        raise ValidationError(errors)


# Namespace of the PostgreSQL advisory lock under which a team's new properties are declared.
_PROPERTIES_LOCK = 0x4C505250  # "LPRP"


def _team_properties_lock(team: Team) -> None:
    """Until the transaction ends, requests declaring properties for this team take turns, so two cannot both
    take the last free place under CONTACT_PROPERTIES_PER_TEAM. An advisory lock, not the team row: the
    caller already holds a contact's row, and the suppression removal locks the team row before a contact's.
    SQLite needs none (one writer at a time)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s::int, %s::int)", [_PROPERTIES_LOCK, team.pk % 2**31])


def _team_properties_room_check(*, team: Team, keys: list[str]) -> None:
    limit = settings.CONTACT_PROPERTIES_PER_TEAM
    count = ContactProperty.objects.filter(team=team).count()
    if count + len(keys) > limit:
        names = ", ".join(sorted(keys)[:5]) + (", …" if len(keys) > 5 else "")
        raise ValidationError(
            f"A team has at most {limit:,} custom properties (CONTACT_PROPERTIES_PER_TEAM) and this one has "
            f"{count:,}: {names} cannot be added. Existing properties can still be set."
        )


def _properties_declare(*, team: Team, types: dict[str, str], values: dict[str, Any]) -> None:
    """Declare new keys (key → type) with one count and one insert, however many there are. A key that
    another request declared since `values` were checked keeps that request's type, and its value here is
    checked against it."""
    _team_properties_lock(team)
    raced = dict(ContactProperty.objects.filter(team=team, key__in=list(types)).values_list("key", "type"))
    if raced:
        _property_values_check({key: values[key] for key in raced}, raced)
        types = {key: kind for key, kind in types.items() if key not in raced}
        if not types:
            return
    _team_properties_room_check(team=team, keys=list(types))
    ContactProperty.objects.bulk_create(
        [ContactProperty(team=team, key=key, label=key, type=kind) for key, kind in types.items()],
        ignore_conflicts=True,  # a key declared meanwhile without the lock (SQLite) stays as it is
    )


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
    if name in BILLING_PROPERTIES:  # built in for every team: creating it with its own type changes nothing
        if type != BILLING_PROPERTIES[name]:
            raise ContactConflict(f"{name} is a built-in Stripe billing property, of type {BILLING_PROPERTIES[name]}.")
        return ContactProperty(team=team, key=name, label=BILLING_LABELS[name], type=type)
    with transaction.atomic():
        _team_properties_lock(team)
        if ContactProperty.objects.filter(team=team, key=name).exists():
            raise ContactConflict(f"The property {name} exists already.")
        _team_properties_room_check(team=team, keys=[name])
        try:
            with transaction.atomic():
                return ContactProperty.objects.create(team=team, key=name, label=name, type=type)
        except IntegrityError:  # created meanwhile (SQLite takes no advisory lock)
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
    locked = Contact.objects.select_for_update().live()  # the API never sees test-mode contacts
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
    was_subscribed = contact.subscribed
    for name, value in fields.items():
        setattr(contact, name, value)
    if contact.subscribed != was_subscribed:  # Loops' API may resubscribe anyone; it says who did what
        unsubscribed = (Contact.UnsubscribedBy.API, timezone.now())
        contact.unsubscribed_by, contact.unsubscribed_at = ("", None) if contact.subscribed else unsubscribed
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
