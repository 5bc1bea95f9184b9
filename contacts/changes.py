"""What changed on a contact: the fields and properties a "Contact updated" trigger watches, before and after a
write. Each writer of contacts takes `contact_state` before it changes a contact and sends `contacts_changed`
(contacts.signals) with `state_changes` after it saved."""

from typing import Any

from .models import Contact

# The contact's own fields a change is reported for, by their names in conditions (contacts.conditions).
WATCHED_FIELDS = ("email", "first_name", "last_name", "source", "user_group", "user_id", "subscribed")


def field_watchable(name: str) -> bool:
    """A field a change is reported for: one of WATCHED_FIELDS, or a property with a valid key (which an Update
    contact step may declare only when it first sets it). Not `created_at`, `stripe_customer_id` or `lists`."""
    from .services import PROPERTY_KEY

    if name.startswith("contact.properties."):
        return bool(PROPERTY_KEY.fullmatch(name.removeprefix("contact.properties.")))
    return name.startswith("contact.") and name.removeprefix("contact.") in WATCHED_FIELDS


def contact_state(contact: Contact) -> dict[str, Any]:
    state = {f"contact.{name}": getattr(contact, name) for name in WATCHED_FIELDS}
    state.update({f"contact.properties.{key}": value for key, value in (contact.properties or {}).items()})
    return state


def state_changes(before: dict[str, Any], contact: Contact) -> dict[str, tuple[Any, Any]]:
    """{field: (old, new)} for each field or property whose value differs (a property that is gone: None)."""
    after = contact_state(contact)
    return {
        name: (before.get(name), after.get(name))
        for name in before.keys() | after.keys()
        if before.get(name) != after.get(name)
    }


def changes_send(pairs: list[tuple[Contact, dict[str, tuple[Any, Any]]]]) -> None:
    """Send `contacts_changed` for the contacts that did change (once, for all of them)."""
    from .signals import contacts_changed

    changed = [(contact, changes) for contact, changes in pairs if changes]
    if changed:
        contacts_changed.send(sender=Contact, changes=changed)
