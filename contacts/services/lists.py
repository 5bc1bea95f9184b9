"""Mailing list use cases of the app: a team's lists, and which of them a contact is on.

`contact_lists_change` is the writer of one contact's memberships: the app's pages, the API's upsert and the
Stripe sync's list for new contacts all go through it. The Audience's bulk action (`bulk`) adds many at once.
"""

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import Team

from ..models import Contact, ListMembership, MailingList
from ..signals import lists_joined

NAME_TAKEN = "Your team already has a list with this name."


def _save(mailing_list: MailingList) -> MailingList:
    """Save, reporting a race on the unique (team, name) as a ValidationError on `name`, not a server error."""
    try:
        with transaction.atomic():
            mailing_list.save()
    except IntegrityError:
        raise ValidationError({"name": NAME_TAKEN}) from None
    return mailing_list


def mailing_list_create(*, team: Team, name: str, description: str = "", is_public: bool = False) -> MailingList:
    return _save(MailingList(team=team, name=name.strip(), description=description.strip(), is_public=is_public))


def mailing_list_update(
    *, mailing_list: MailingList, name: str, description: str = "", is_public: bool = False
) -> MailingList:
    mailing_list.name, mailing_list.description = name.strip(), description.strip()
    mailing_list.is_public = is_public
    return _save(mailing_list)


def mailing_list_delete(*, mailing_list: MailingList) -> None:
    """The list and its memberships go; the contacts stay."""
    mailing_list.delete()


@transaction.atomic
def contact_lists_set(*, contact: Contact, mailing_lists: Iterable[MailingList | int]) -> set[int]:
    """Put the contact on exactly these lists of its team: others are left, missing ones joined.

    A list of another team (or an id that is not a list) is ignored, never attached. Returns the ids of
    the lists the contact is on afterwards."""
    wanted = {m.pk if isinstance(m, MailingList) else int(m) for m in mailing_lists}
    wanted = set(MailingList.objects.filter(team_id=contact.team_id, pk__in=wanted).values_list("pk", flat=True))
    have = set(ListMembership.objects.filter(contact=contact).values_list("mailing_list_id", flat=True))
    contact_lists_change(contact=contact, join=wanted - have, leave=have - wanted)
    return wanted


def contact_lists_change(*, contact: Contact, join: Iterable[int] = (), leave: Iterable[int] = ()) -> None:
    """The one writer of list memberships: the contact joins `join` and leaves `leave`, lists of its own team
    (the callers check the ids). Joining twice, or leaving a list it is not on, changes nothing."""
    leave = set(leave)
    join = set(join) - leave
    if leave:
        ListMembership.objects.filter(contact=contact, mailing_list_id__in=leave).delete()
    if not join:
        return
    on = set(
        ListMembership.objects.filter(contact=contact, mailing_list_id__in=join).values_list(
            "mailing_list_id", flat=True
        )
    )
    ListMembership.objects.bulk_create(
        [ListMembership(team_id=contact.team_id, mailing_list_id=pk, contact=contact) for pk in sorted(join)],
        ignore_conflicts=True,  # a concurrent save of the same contact added it already
    )
    if join - on:
        lists_joined.send(sender=Contact, contact=contact, list_ids=sorted(join - on))
