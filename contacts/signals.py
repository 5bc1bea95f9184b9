"""The contacts app's signals. Its services send them when a use case is done, never a model save, so a
receiver reads as a consequence of the use case (as `login()` sends django.contrib.auth's `user_logged_in`)."""

from django.dispatch import Signal

# Contacts were created, from any source: Stripe (one by one or a batch of events), the app, the API, the admin.
# Sent by the contacts services inside the transaction that creates them, with `contacts` (a list, of one or of a
# whole batch, so that a receiver does its work for all of them at once). The loops app enrols them in "Contact
# added" loops.
contacts_created = Signal()
# Contacts' fields or properties changed (contacts.changes): `changes`, a list of (contact, {field: (old, new)}),
# sent inside the writer's transaction once it saved them. The loops app starts "Contact updated" loops.
contacts_changed = Signal()
# A contact joined mailing lists: `contact` and `list_ids` (the lists it was not on before); or, from a bulk
# action, `contacts` (of one team) that all joined `list_ids`. The loops app starts "Added to a mailing list" loops.
lists_joined = Signal()
