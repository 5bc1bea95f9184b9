"""The contacts app's signals. Its services send them when a use case is done, never a model save, so a
receiver reads as a consequence of the use case (as `login()` sends django.contrib.auth's `user_logged_in`)."""

from django.dispatch import Signal

# A contact was created, from any source: Stripe, the app, the API, the admin. Sent by the contacts services
# inside the transaction that creates it, with `contact`. The loops app enrols it in "Contact added" loops.
contact_created = Signal()
# Contacts were created together, by a batch of Stripe events (contacts.services.contacts_sync), with
# `contacts`: one signal for the batch, so that its receivers can do their work for all of them at once.
contacts_created = Signal()
