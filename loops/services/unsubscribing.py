"""Unsubscribe links: the signed token in every marketing email, and what its page does with it."""

from django.core import signing
from django.urls import reverse

from contacts.models import Contact, ListMembership
from contacts.services import contact_lists_change, contact_set_subscribed
from loopsync.ids import parse_id
from loopsync.site import absolute_url

UNSUBSCRIBE_SALT = "loops.unsubscribe"
TEST_EMAIL_LINK = "test"  # the unsubscribe link of a "Send a test to me" email: its page says so


def unsubscribe_token(contact: Contact) -> str:
    return signing.dumps([contact.team_id, contact.id], salt=UNSUBSCRIBE_SALT, compress=True)


def unsubscribe_contact_for(token: str) -> Contact | None:
    try:
        team_id, contact_id = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    return Contact.objects.filter(team_id=team_id, id=contact_id).first()


def unsubscribe_url(contact: Contact) -> str:
    return absolute_url(reverse("loops:unsubscribe", kwargs={"token": unsubscribe_token(contact)}))


def contact_unsubscribe(*, contact: Contact) -> Contact:
    return contact_set_subscribed(contact=contact, subscribed=False, by=Contact.UnsubscribedBy.LINK)


def contact_resubscribe(*, contact: Contact) -> Contact:
    """The contact, on the page its unsubscribe link opens, asks for email again."""
    return contact_set_subscribed(contact=contact, subscribed=True, by=Contact.UnsubscribedBy.LINK)


def contact_preferences_save(*, contact: Contact, public_lists: list, chosen: list[str]) -> None:
    """The contact's own choice of the team's public lists, on its preferences page: joins the ticked ones, leaves
    the others (a list that is not public, or not the team's, is never touched)."""
    public = {mailing_list.pk for mailing_list in public_lists}
    wanted = {pk for pk in map(parse_id, chosen) if pk is not None and pk in public}
    have = set(
        ListMembership.objects.filter(contact=contact, mailing_list_id__in=public).values_list(
            "mailing_list_id", flat=True
        )
    )
    contact_lists_change(contact=contact, join=wanted - have, leave=have - wanted)
