"""Custom contact properties: their keys, types and values, declared per team."""

import re
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from accounts.models import Team

from ..billing import BILLING_LABELS, BILLING_PROPERTIES
from ..models import STANDARD_FIELDS, ContactProperty

PROPERTY_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
RESERVED_KEYS = {*STANDARD_FIELDS, "id", "mailingLists", "optInStatus", "createdAt", "updatedAt", "eventName",
                 "eventProperties", "properties"}  # fmt: skip


class ContactConflict(Exception):
    """The email or userId belongs to another contact."""


def _property_type(value: Any) -> str:
    if isinstance(value, bool):
        return ContactProperty.Type.BOOLEAN
    if isinstance(value, int | float):
        return ContactProperty.Type.NUMBER
    return ContactProperty.Type.STRING


def property_values_clean(*, team: Team, values: dict[str, Any]) -> dict[str, Any]:
    """Custom property values checked against their declared types; an unknown key is declared with
    the type of its value. Raises ValidationError naming each bad key, or the cap the request is over:
    CONTACT_PROPERTIES_PER_REQUEST keys in one request, CONTACT_PROPERTIES_PER_TEAM declared properties,
    PROPERTY_VALUE_MAX_CHARS characters in a value. Declares in the caller's transaction."""
    declared = property_values_validate(team=team, values=values)
    new = {key: _property_type(value) for key, value in values.items() if key not in declared and value is not None}
    if new:
        _properties_declare(team=team, types=new, values=values)
    return values


def property_values_validate(*, team: Team, values: dict[str, Any]) -> dict[str, str]:
    """What `property_values_clean` checks, without declaring anything (a form's validation). Returns the
    declared types of the keys that have one."""
    limit = settings.CONTACT_PROPERTIES_PER_REQUEST
    if len(values) > limit:  # before any query: a body of 20,000 keys costs what one of 101 does
        raise ValidationError(
            f"A request sets at most {limit:,} custom properties (CONTACT_PROPERTIES_PER_REQUEST); "
            f"this one has {len(values):,}."
        )
    declared = dict(ContactProperty.objects.filter(team=team, key__in=list(values)).values_list("key", "type"))
    declared.update({key: BILLING_PROPERTIES[key] for key in values if key in BILLING_PROPERTIES})
    _property_values_check(values, declared)
    return declared


def _property_values_check(values: dict[str, Any], declared: dict[str, str]) -> None:
    """ValidationError naming each key whose name or value is wrong (a key not in `declared` takes the type
    of its value)."""
    max_chars = settings.PROPERTY_VALUE_MAX_CHARS
    errors: dict[str, str] = {}
    for key, value in values.items():
        if key in RESERVED_KEYS or not PROPERTY_KEY.fullmatch(key):
            errors[key] = "A custom property name starts with a letter and has only letters, digits and _."
            continue
        if value is None:
            continue
        if isinstance(value, dict | list):
            errors[key] = "A property value is text, a number, true/false or null."
            continue
        kind = declared.get(key) or _property_type(value)
        if kind == ContactProperty.Type.NUMBER and (isinstance(value, bool) or not isinstance(value, int | float)):
            errors[key] = "This property is a number."
        elif kind == ContactProperty.Type.BOOLEAN and not isinstance(value, bool):
            errors[key] = "This property is true or false."
        elif kind == ContactProperty.Type.STRING and not isinstance(value, str):
            errors[key] = "This property is text."
        elif kind == ContactProperty.Type.DATE and not _is_date(value):
            errors[key] = "This property is a date: ISO 8601 text or a Unix time in milliseconds."
        if isinstance(value, str) and len(value) > max_chars:
            errors[key] = f"A property value is at most {max_chars:,} characters (PROPERTY_VALUE_MAX_CHARS)."
    if errors:
        raise ValidationError(errors)


# Namespace of the PostgreSQL advisory lock under which a team's new properties are declared.
_PROPERTIES_LOCK = 0x4C505250  # "LPRP"


def _team_properties_lock(team: Team) -> None:
    """Until the transaction ends, requests declaring properties for this team take turns, so two cannot both
    take the last free place under CONTACT_PROPERTIES_PER_TEAM. An advisory lock, not the team row: the
    caller already holds a contact's row, and the suppression removal locks the team row before a contact's.
    SQLite needs none (one writer at a time)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s::int, %s::int)", [_PROPERTIES_LOCK, team.pk % 2**31])


def _team_properties_room_check(*, team: Team, keys: list[str]) -> None:
    limit = settings.CONTACT_PROPERTIES_PER_TEAM
    count = ContactProperty.objects.filter(team=team).count()
    if count + len(keys) > limit:
        names = ", ".join(sorted(keys)[:5]) + (", …" if len(keys) > 5 else "")
        raise ValidationError(
            f"A team has at most {limit:,} custom properties (CONTACT_PROPERTIES_PER_TEAM) and this one has "
            f"{count:,}: {names} cannot be added. Existing properties can still be set."
        )


def _properties_declare(*, team: Team, types: dict[str, str], values: dict[str, Any]) -> None:
    """Declare new keys (key → type) with one count and one insert, however many there are. A key that
    another request declared since `values` were checked keeps that request's type, and its value here is
    checked against it."""
    _team_properties_lock(team)
    raced = dict(ContactProperty.objects.filter(team=team, key__in=list(types)).values_list("key", "type"))
    if raced:
        _property_values_check({key: values[key] for key in raced}, raced)
        types = {key: kind for key, kind in types.items() if key not in raced}
        if not types:
            return
    _team_properties_room_check(team=team, keys=list(types))
    ContactProperty.objects.bulk_create(
        [ContactProperty(team=team, key=key, label=key, type=kind) for key, kind in types.items()],
        ignore_conflicts=True,  # a key declared meanwhile without the lock (SQLite) stays as it is
    )


def _is_date(value: Any) -> bool:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return True
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def contact_property_create(*, team: Team, name: str, type: str) -> ContactProperty:
    name = name.strip()
    if name in RESERVED_KEYS or not PROPERTY_KEY.fullmatch(name):
        raise ValidationError({"name": "A property name starts with a letter and has only letters, digits and _."})
    if type not in ContactProperty.Type.values:
        raise ValidationError({"type": "The type is one of string, number, boolean or date."})
    if name in BILLING_PROPERTIES:  # built in for every team: creating it with its own type changes nothing
        if type != BILLING_PROPERTIES[name]:
            raise ContactConflict(f"{name} is a built-in Stripe billing property, of type {BILLING_PROPERTIES[name]}.")
        return ContactProperty(team=team, key=name, label=BILLING_LABELS[name], type=type)
    with transaction.atomic():
        _team_properties_lock(team)
        if ContactProperty.objects.filter(team=team, key=name).exists():
            raise ContactConflict(f"The property {name} exists already.")
        _team_properties_room_check(team=team, keys=[name])
        try:
            with transaction.atomic():
                return ContactProperty.objects.create(team=team, key=name, label=name, type=type)
        except IntegrityError:  # created meanwhile (SQLite takes no advisory lock)
            raise ContactConflict(f"The property {name} exists already.") from None
