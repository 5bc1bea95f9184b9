"""The "Update contact" step: set or clear a contact property, or join or leave a mailing list, through the
contacts services (so the change is typed, declared and announced like any other: a "Contact updated" or an
"Added to a mailing list" loop can start from it)."""

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError

from accounts.models import Team
from contacts.billing import BILLING_PROPERTIES
from contacts.models import Contact, ContactProperty, MailingList
from contacts.services import (
    PROPERTY_KEY,
    RESERVED_KEYS,
    contact_lists_change,
    contact_properties_update,
    property_values_validate,
)

from ..models import LoopStep

Update = LoopStep.Update


def property_type(*, team_id: int, key: str) -> str:
    """The declared type of a property ("string" for one not declared yet: it is declared as text)."""
    if key in BILLING_PROPERTIES:
        return BILLING_PROPERTIES[key]
    declared = ContactProperty.objects.filter(team_id=team_id, key=key).values_list("type", flat=True).first()
    return declared or ContactProperty.Type.STRING


def property_value(text: str, kind: str) -> Any:
    """The step's text as a value of the property's type, or ValueError saying why it is not one."""
    text = text.strip()
    if kind == ContactProperty.Type.NUMBER:
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"“{text[:40]}” is not a number") from None
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == ContactProperty.Type.BOOLEAN:
        if text.lower() not in {"true", "false"}:
            raise ValueError(f"“{text[:40]}” is not true or false")
        return text.lower() == "true"
    return text


def update_step_problems(*, step: LoopStep) -> dict[str, str]:
    """What would make this step fail each run that reaches it, by field (the editor's form and the importer refuse
    it): a property name the contacts services refuse, a value that is not of the property's declared type."""
    key = step.update_property.strip()
    if step.update_action not in {Update.SET_PROPERTY, Update.CLEAR_PROPERTY} or not key:
        return {}  # LoopStep.clean says what is missing
    if key in RESERVED_KEYS or not PROPERTY_KEY.fullmatch(key):
        return {"update_property": "A property name starts with a letter and has only letters, digits and _."}
    if step.update_action == Update.CLEAR_PROPERTY:
        return {}
    try:
        value = property_value(step.update_value, property_type(team_id=step.team_id, key=key))
        property_values_validate(team=Team(id=step.team_id), values={key: value})
    except ValueError as exc:
        return {"update_value": f"{exc}: {key} is a {property_type(team_id=step.team_id, key=key)} property."}
    except ValidationError as exc:
        return {"update_value": " ".join(exc.messages)}
    return {}


def contact_update_apply(*, contact: Contact, step: LoopStep) -> str:
    """Apply the step to the contact; returns what it did, for the run's history."""
    action = step.update_action
    if action in {Update.SET_PROPERTY, Update.CLEAR_PROPERTY}:
        key = step.update_property.strip()
        if action == Update.CLEAR_PROPERTY:
            contact_properties_update(contact=contact, values={key: None})
            return f"cleared {key}"
        value = property_value(step.update_value, property_type(team_id=contact.team_id, key=key))
        contact_properties_update(contact=contact, values={key: value})
        return f"set {key} to {value}"
    mailing_list = (
        MailingList.objects.filter(team_id=contact.team_id, pk=step.update_list_id).first()
        if step.update_list_id is not None
        else None
    )
    if mailing_list is None:
        return "the mailing list was deleted: nothing changed"
    if action == Update.JOIN_LIST:
        contact_lists_change(contact=contact, join=[mailing_list.pk])
        return f"added to {mailing_list.name}"
    contact_lists_change(contact=contact, leave=[mailing_list.pk])
    return f"removed from {mailing_list.name}"
