"""The API's create-or-update of a contact, as Loops' API does it."""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Team
from loopsync.ids import parse_id

from ..changes import changes_send, contact_state, state_changes
from ..models import SUPPRESSED_BY_PROVIDER, Contact, MailingList
from ..signals import contacts_created
from .editing import bounce_lift, bounce_lifted_by_new_email
from .lists import contact_lists_change
from .properties import ContactConflict, property_values_clean

SOURCE_API = "API"


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
    contact_lists_change(
        contact=contact,
        join=[list_id for list_id, on in ids.items() if on],
        leave=[list_id for list_id, on in ids.items() if not on],
    )


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
    locked = Contact.objects.select_for_update(no_key=True).live()  # the API never sees test-mode contacts
    by_user = locked.filter(team=team, user_id=user_id).first() if user_id else None
    by_email = locked.filter(team=team).with_email(email).first() if email else None
    if create_only and (by_user or by_email):
        raise ContactConflict("Email or userId is already on list.")
    if by_user and by_email and by_user.pk != by_email.pk:
        raise ContactConflict("This email belongs to another contact.")
    contact = by_user or by_email
    created = contact is None
    before = contact_state(contact) if contact is not None else {}
    lift_bounce = contact is not None and bool(email) and bounce_lifted_by_new_email(contact, email)
    if contact is None:
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
    if lift_bounce:
        bounce_lift(contact)
        was_subscribed = True
    elif not was_subscribed and contact.unsubscribed_by in SUPPRESSED_BY_PROVIDER:
        contact.subscribed = False  # a bounce or a complaint: only the suppression removal lifts it
    if contact.subscribed != was_subscribed:  # Loops' API may resubscribe anyone else; it says who did what
        unsubscribed = (Contact.UnsubscribedBy.API, timezone.now())
        contact.unsubscribed_by, contact.unsubscribed_at = ("", None) if contact.subscribed else unsubscribed
        contact.unsubscribe_reason = ""
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
    if created:
        contacts_created.send(sender=Contact, contacts=[contact])
    else:
        changes_send([(contact, state_changes(before, contact))])
    return contact, created
