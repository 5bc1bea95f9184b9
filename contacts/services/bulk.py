"""Bulk actions on the Audience: add to a mailing list, unsubscribe or delete the contacts a filter (or a selection)
picks, in batches of BATCH, each in its own transaction. At most BULK_MAX contacts at a time, so a request stays
bounded: the error names the limit. The membership writes are set-based here, beside `contact_lists_change` (the
one-contact writer), and send the same `lists_joined` signal, once per batch."""

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Team

from ..changes import changes_send, contact_state, state_changes
from ..models import Contact, ListMembership, MailingList, UnsubscribedBy
from ..signals import lists_joined

BULK_MAX = 20_000
BATCH = 1_000


class BulkAction(models.TextChoices):
    ADD_TO_LIST = "add_to_list", "Add to a mailing list"
    UNSUBSCRIBE = "unsubscribe", "Unsubscribe"
    DELETE = "delete", "Delete"


def bulk_ids(contacts: QuerySet[Contact]) -> list[int]:
    """The ids a bulk action would take, in order; ValidationError past BULK_MAX."""
    ids = list(contacts.order_by("id").values_list("id", flat=True)[: BULK_MAX + 1])
    if len(ids) > BULK_MAX:
        raise ValidationError(
            f"A bulk action takes at most {BULK_MAX:,} contacts at a time: narrow the filter, or go part by part "
            "(e.g. by source or by date added)."
        )
    return ids


def contacts_bulk(*, team: Team, ids: list[int], action: str, mailing_list: MailingList | None = None) -> int:
    """Apply `action` to the team's contacts `ids` (others are ignored). Returns how many it changed."""
    if action == BulkAction.ADD_TO_LIST and (mailing_list is None or mailing_list.team_id != team.pk):
        raise ValidationError("Choose one of your team's mailing lists.")
    if action not in BulkAction.values:
        raise ValidationError("Choose what to do.")
    changed = 0
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        with transaction.atomic():
            if action == BulkAction.ADD_TO_LIST:
                assert mailing_list is not None
                changed += _join(team, chunk, mailing_list)
            elif action == BulkAction.UNSUBSCRIBE:
                changed += _unsubscribe(team, chunk)
            else:
                _, deleted = Contact.objects.filter(team=team, pk__in=chunk).delete()
                changed += deleted.get(Contact._meta.label, 0)
    return changed


def _join(team: Team, chunk: list[int], mailing_list: MailingList) -> int:
    on = set(
        ListMembership.objects.filter(mailing_list=mailing_list, contact_id__in=chunk).values_list(
            "contact_id", flat=True
        )
    )
    joining = list(Contact.objects.filter(team=team, pk__in=chunk).exclude(pk__in=on).order_by("id"))
    ListMembership.objects.bulk_create(
        [ListMembership(team=team, mailing_list=mailing_list, contact=contact) for contact in joining],
        ignore_conflicts=True,  # joined meanwhile by another writer
    )
    if joining:
        lists_joined.send(sender=Contact, contacts=joining, list_ids=[mailing_list.pk])
    return len(joining)


def _unsubscribe(team: Team, chunk: list[int]) -> int:
    """As a team member would, one by one: who is unsubscribed already keeps who did it, and when."""
    now = timezone.now()
    contacts = list(Contact.objects.select_for_update().filter(team=team, pk__in=chunk, subscribed=True).order_by("id"))
    if not contacts:
        return 0
    before = {contact.pk: contact_state(contact) for contact in contacts}
    Contact.objects.filter(pk__in=[contact.pk for contact in contacts]).update(
        subscribed=False, unsubscribed_by=UnsubscribedBy.TEAM, unsubscribed_at=now, updated_at=now
    )
    for contact in contacts:
        contact.subscribed, contact.unsubscribed_by, contact.unsubscribed_at = False, UnsubscribedBy.TEAM, now
    changes_send([(contact, state_changes(before[contact.pk], contact)) for contact in contacts])
    return len(contacts)
