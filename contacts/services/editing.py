"""Editing a contact in the app: saving the form's fields and lists, subscribing, deleting."""

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Team

from ..changes import changes_send, contact_state, state_changes
from ..models import SUPPRESSED_BY_PROVIDER, Contact, MailingList, UnsubscribedBy
from ..signals import contacts_created
from .lists import contact_lists_set
from .properties import property_values_clean

SOURCE_APP = "Added in the app"


EMAIL_TAKEN = "A contact with this email is already in your audience."


def contact_save(
    *,
    team: Team,
    contact: Contact,
    properties: dict[str, Any],
    mailing_lists: Iterable[MailingList | int] | None = None,
    was_subscribed: bool = True,
) -> Contact:
    """Create or update a contact edited in the app, with its custom properties and (unless None) exactly these
    mailing lists: all of it, or nothing. `was_subscribed` is what the editor showed, so that a change says
    who unsubscribed. Raises ValidationError by field: `properties` when the team's property cap was reached
    since the form's check, `email` when another contact took the address meanwhile."""
    contact.team = team
    created = contact.pk is None
    saved = None if created else Contact.objects.filter(pk=contact.pk, team=team).first()
    before = contact_state(saved) if saved is not None else {}
    contact.properties = properties or {}
    if created and not contact.source:  # the admin's form may name one
        contact.source = SOURCE_APP
    if was_subscribed and not contact.subscribed:
        contact.unsubscribed_by, contact.unsubscribed_at = Contact.UnsubscribedBy.TEAM, timezone.now()
    elif contact.subscribed and not was_subscribed:  # the form refuses this for a contact who used the link
        contact.unsubscribed_by, contact.unsubscribed_at = "", None
    if saved is not None and bounce_lifted_by_new_email(saved, contact.email):
        bounce_lift(contact)
    if contact.subscribed:
        contact.unsubscribe_reason = ""
    with transaction.atomic():
        try:  # typed and declared like the API's (the form checked them; this declares the new ones)
            property_values_clean(team=team, values=contact.properties)
        except ValidationError as exc:
            raise ValidationError({"properties": exc.messages}) from None
        try:
            with transaction.atomic():
                contact.save()
        except IntegrityError:
            raise ValidationError({"email": EMAIL_TAKEN}) from None
        if mailing_lists is not None:
            contact_lists_set(contact=contact, mailing_lists=mailing_lists)
        if created:
            contacts_created.send(sender=Contact, contacts=[contact])
        elif saved is not None:
            changes_send([(contact, state_changes(before, contact))])
    return contact


def bounce_lifted_by_new_email(saved: Contact, email: str) -> bool:
    """A contact suppressed by a hard bounce whose email is changed to another address is emailed again: the
    address that bounced is gone (a typo fixed), and its bounce says nothing about the new one. A complaint is the
    person's, whatever their address: it stays."""
    return saved.unsubscribed_by == UnsubscribedBy.BOUNCE and saved.email.strip().lower() != email.strip().lower()


def bounce_lift(contact: Contact) -> None:
    """Subscribed again, unsaved, forgetting the bounce (see bounce_lifted_by_new_email)."""
    contact.subscribed, contact.unsubscribed_by, contact.unsubscribed_at, contact.unsubscribe_reason = (
        True,
        "",
        None,
        "",
    )


def contact_properties_update(*, contact: Contact, values: dict[str, Any]) -> Contact:
    """Set custom properties of one contact (a value of None clears one), typed and declared as the API's are,
    with its row locked: a loop's "Update contact" step. Returns the contact as saved."""
    with transaction.atomic():
        locked = Contact.objects.select_for_update(no_key=True).get(pk=contact.pk)
        before = contact_state(locked)
        setting = {key: value for key, value in values.items() if value is not None}
        property_values_clean(team=Team(id=locked.team_id), values=setting)
        merged = {**(locked.properties or {}), **setting}
        for key in values.keys() - setting.keys():
            merged.pop(key, None)
        locked.properties = merged
        locked.save(update_fields=["properties", "updated_at"])
        changes_send([(locked, state_changes(before, locked))])
    contact.properties = locked.properties
    return locked


class ResubscribeRefused(ValidationError):
    """The contact unsubscribed with the link in an email: only they (or the API's suppression removal,
    with its quota) can undo it."""


# Whom a team member may resubscribe from the Audience page: only a contact a team member or the API
# unsubscribed. One who used the link, or whose unsubscribe was never attributed (before LoopSync recorded
# who did it), can resubscribe only themselves, or through the API's suppression removal.
RESUBSCRIBABLE_BY_TEAM = (UnsubscribedBy.TEAM, UnsubscribedBy.API)


def contact_set_subscribed(*, contact: Contact, subscribed: bool, by: str, reason: str = "") -> Contact:
    """Subscribe or unsubscribe, recording who did it (`UnsubscribedBy`). A team member cannot resubscribe a
    contact who unsubscribed with the link (`ResubscribeRefused`); Loops has the same rule. Nor can the link lift a
    bounce or a complaint (`SUPPRESSED_BY_PROVIDER`): only the API's suppression removal does. The contact itself
    (`LINK`) and the API's suppression removal (`API`) can. Each change is one conditional UPDATE, so a link
    unsubscribe arriving at the same moment is never overwritten by a team member's resubscribe. A bounce or a
    complaint (`SUPPRESSED_BY_PROVIDER`, with the provider's `reason`) also replaces an unsubscribe a team member
    could undo: a dead address must not be one click from being mailed again."""
    now = timezone.now()
    rows = Contact.objects.filter(pk=contact.pk)
    if subscribed:
        if by == UnsubscribedBy.TEAM:
            rows = rows.filter(Q(subscribed=True) | Q(unsubscribed_by__in=RESUBSCRIBABLE_BY_TEAM))
        elif by == UnsubscribedBy.LINK:  # the link can be in a forwarded email: it never lifts a suppression
            rows = rows.exclude(unsubscribed_by__in=SUPPRESSED_BY_PROVIDER)
        changes = {"subscribed": True, "unsubscribed_by": "", "unsubscribed_at": None, "unsubscribe_reason": ""}
    else:  # already unsubscribed: who did it first, and when, stays (but for a suppression, as above)
        if by in SUPPRESSED_BY_PROVIDER:
            rows = rows.filter(Q(subscribed=True) | Q(unsubscribed_by__in=RESUBSCRIBABLE_BY_TEAM))
        else:
            rows = rows.filter(subscribed=True)
        changes = {
            "subscribed": False,
            "unsubscribed_by": by,
            "unsubscribed_at": now,
            "unsubscribe_reason": reason[:500],
        }
    if rows.update(**changes, updated_at=now) == 1:
        before = contact_state(contact)
        for field, value in changes.items():
            setattr(contact, field, value)
        changes_send([(contact, state_changes(before, contact))])
        return contact
    contact.refresh_from_db(fields=["subscribed", "unsubscribed_by", "unsubscribed_at", "unsubscribe_reason"])
    if subscribed and resubscribe_refused(contact):
        raise ResubscribeRefused(resubscribe_refused_message(contact))
    return contact


RESUBSCRIBE_REFUSED = (
    "This contact unsubscribed with the link in an email (or before LoopSync recorded who did it), so only "
    "they can resubscribe, from that link. Loops has the same rule."
)


SUPPRESSION_KEPT = "The email provider reported {what} for this address, so LoopSync does not mail it again. {lift}"
LIFT_BOUNCE = (
    "Correct the email above if it was mistyped: a new address is mailed again. Otherwise only the API's "
    "suppression removal (DELETE /api/v1/contacts/suppression) lifts it, once the address is known to work."
)
LIFT_COMPLAINT = (
    "Only the API's suppression removal (DELETE /api/v1/contacts/suppression) lifts it, when the person asked "
    "to be mailed again."
)


def resubscribe_refused_message(contact: Contact) -> str:
    """Why a team member cannot resubscribe this contact, for the form and the error."""
    if contact.unsubscribed_by in SUPPRESSED_BY_PROVIDER:
        bounce = contact.unsubscribed_by == UnsubscribedBy.BOUNCE
        return SUPPRESSION_KEPT.format(
            what=UnsubscribedBy(contact.unsubscribed_by).label, lift=LIFT_BOUNCE if bounce else LIFT_COMPLAINT
        )
    return RESUBSCRIBE_REFUSED


def resubscribe_refused(contact: Contact) -> bool:
    """True when a team member may not resubscribe this contact (see RESUBSCRIBABLE_BY_TEAM)."""
    return not contact.subscribed and contact.unsubscribed_by not in RESUBSCRIBABLE_BY_TEAM


def contact_delete(*, contact: Contact) -> None:
    contact.delete()


# --- the public API's writes (Loops-compatible) ----------------------------------------------------
