"""Unsubscribe links: the signed token in every marketing email, and what its page does with it."""

from django.core import signing
from django.urls import reverse

from contacts.models import Contact
from contacts.services import contact_set_subscribed
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
