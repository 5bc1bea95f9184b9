"""Conditions: the filter builder's data and its evaluation, shared by loop filters, branch paths and, later,
the Audience.

A condition tree is JSON:

    {"match": "all" | "any", "rules": [rule or group, ...]}
    rule:  {"field": "contact.first_name", "op": "contains", "value": "ann"}
    group: {"match": "any", "rules": [...]}

A field is a contact field (`contact.email`, `contact.subscribed`, `contact.created_at`…), a contact
property (`contact.properties.plan`), a property of the triggering event (`event.amount`), or `lists` (the
contact's mailing lists). Each has a type, and a type has its operators (OPERATORS). A tree is checked against
the fields a team can pick (`fields_for`, its catalogue) before it is saved: an unknown field or an operator
that does not fit its type is refused with a message that names it. An empty tree matches everyone (a branch's
catch-all).
"""

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

TEXT, NUMBER, DATE, BOOLEAN, LIST = "text", "number", "date", "boolean", "list"

# Operators by type, with their labels, in the order the builder offers them.
OPERATORS: dict[str, dict[str, str]] = {
    TEXT: {
        "equals": "is",
        "not_equals": "is not",
        "contains": "contains",
        "not_contains": "does not contain",
        "starts_with": "starts with",
        "is_empty": "is empty",
        "is_not_empty": "is not empty",
    },
    NUMBER: {
        "eq": "=",
        "ne": "≠",
        "lt": "<",
        "gt": ">",
        "between": "between",
        "is_empty": "is empty",
        "is_not_empty": "is not empty",
    },
    DATE: {
        "before": "before",
        "after": "after",
        "within_last": "within the last (days)",
        "within_next": "within the next (days)",
        "is_empty": "is empty",
        "is_not_empty": "is not empty",
    },
    BOOLEAN: {"is_true": "is true", "is_false": "is false"},
    LIST: {"in_list": "is in the list", "not_in_list": "is not in the list"},
}
UNARY = {"is_empty", "is_not_empty", "is_true", "is_false"}  # no value
MAX_RULES = 50
MAX_DEPTH = 3  # a tree, a group in it, a group in that
MAX_VALUE_LENGTH = 255
DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() takes "²", which int() refuses
NUMBER_EXPONENT_MAX = 300  # a rule's number: within a double's range, and what PostgreSQL's numeric can take
# A date given as a number is a Unix time: in seconds (Stripe's), or in milliseconds (the API's, Loops') from
# EPOCH_MS_FROM on (10^11 seconds is the year 5138); past EPOCH_MAX milliseconds (the year 9999), or below 0, none.
EPOCH_MS_FROM = 10**11
EPOCH_MAX = 253_402_300_799_000

# The contact's own fields a condition reads, by their names in the tree, with their types.
CONTACT_FIELD_TYPES = {
    "email": TEXT,
    "first_name": TEXT,
    "last_name": TEXT,
    "source": TEXT,
    "user_group": TEXT,
    "user_id": TEXT,
    "stripe_customer_id": TEXT,
    "subscribed": BOOLEAN,
    "created_at": DATE,
}
PROPERTY_TYPES = {"string": TEXT, "number": NUMBER, "boolean": BOOLEAN, "date": DATE}  # ContactProperty.Type


@dataclass(frozen=True)
class Field:
    name: str  # as the tree names it: contact.first_name, contact.properties.plan, event.amount, lists
    label: str
    type: str
    values: frozenset[int] | None = None  # `lists`: the ids a rule may name (the team's lists); None: any
    choices: tuple[tuple[int, str], ...] = ()  # `lists`: (id, name) to pick from, by name


def fields_for(
    *,
    properties: Iterable[tuple[str, str, str]] = (),
    event_properties: Mapping[str, str] | None = None,
    lists: Iterable[int] | Mapping[int, str] | None = None,
) -> dict[str, Field]:
    """The catalogue: every field a tree may name. `properties`: the team's declared contact properties as
    (key, label, ContactProperty type); `event_properties`: the triggering event's known keys and their types
    (none outside a loop); `lists`: the ids of the team's mailing lists, or their names by id (None: not checked)."""
    catalogue = {
        f"contact.{name}": Field(f"contact.{name}", name.replace("_", " ").capitalize(), kind)
        for name, kind in CONTACT_FIELD_TYPES.items()
    }
    for key, label, kind in properties:
        name = f"contact.properties.{key}"
        catalogue[name] = Field(name, label or key, PROPERTY_TYPES.get(kind, TEXT))
    for key, kind in (event_properties or {}).items():
        catalogue[f"event.{key}"] = Field(f"event.{key}", f"Event: {key}", kind)
    names = sorted(lists.items(), key=lambda pair: pair[1].lower()) if isinstance(lists, Mapping) else ()
    values = None if lists is None else frozenset(lists)
    catalogue["lists"] = Field("lists", "Mailing lists", LIST, values, tuple(names))
    return catalogue


def value_type(value: Any) -> str:
    """The type a sampled value suggests (an event's properties are not declared)."""
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int | float | Decimal):
        return NUMBER
    if isinstance(value, str) and len(value) >= 10 and _when(value) is not None:
        return DATE
    return TEXT


# --- checking a tree -----------------------------------------------------------------------------


def conditions_clean(tree: Any, catalogue: Mapping[str, Field]) -> dict:
    """The tree, normalised (values as text, known keys only), or ValidationError naming what is wrong. None or
    {} is the empty tree."""
    if not tree:
        return {"match": "all", "rules": []}
    count = [0]
    return _clean_group(tree, catalogue, depth=1, count=count)


def _clean_group(group: Any, catalogue: Mapping[str, Field], *, depth: int, count: list[int]) -> dict:
    if not isinstance(group, dict) or not isinstance(group.get("rules", []), list):
        raise ValidationError("A condition group needs a list of rules.")
    match = group.get("match", "all")
    if match not in {"all", "any"}:
        raise ValidationError(f"A group matches “all” or “any” of its rules, not {str(match)[:20]!r}.")
    rules = []
    for rule in group.get("rules", []):
        count[0] += 1
        if count[0] > MAX_RULES:
            raise ValidationError(f"A filter has at most {MAX_RULES} rules.")
        if isinstance(rule, dict) and "rules" in rule:
            if depth >= MAX_DEPTH:
                raise ValidationError(f"Groups go at most {MAX_DEPTH} deep.")
            rules.append(_clean_group(rule, catalogue, depth=depth + 1, count=count))
        else:
            rules.append(_clean_rule(rule, catalogue))
    return {"match": match, "rules": rules}


def _clean_rule(rule: Any, catalogue: Mapping[str, Field]) -> dict:
    if not isinstance(rule, dict):
        raise ValidationError("A rule names a field, a condition and a value.")
    name = str(rule.get("field", "")).strip()
    field = catalogue.get(name)
    if field is None:
        raise ValidationError(f"Unknown field “{name[:80]}”: pick one of the contact's fields or properties.")
    op = str(rule.get("op", ""))
    if op not in OPERATORS[field.type]:
        raise ValidationError(f"“{OPERATORS_ANY.get(op, op[:20])}” does not apply to {field.label} ({field.type}).")
    cleaned: dict[str, Any] = {"field": name, "op": op}
    if op in UNARY:
        return cleaned
    value = str(rule.get("value", "")).strip()[: MAX_VALUE_LENGTH + 1]
    if len(value) > MAX_VALUE_LENGTH:
        raise ValidationError(f"{field.label}: a value is at most {MAX_VALUE_LENGTH} characters.")
    if value == "":
        raise ValidationError(f"{field.label} {OPERATORS[field.type][op]}: enter a value.")
    if field.type == NUMBER and _number(value) is None:
        raise ValidationError(f"{field.label}: “{value[:40]}” is not a number.")
    if field.type == NUMBER and not _in_range(_number(value)):
        raise ValidationError(f"{field.label}: “{value[:40]}” is out of range.")
    if field.type == DATE and op in {"before", "after"} and _when(value) is None:
        raise ValidationError(f"{field.label}: “{value[:40]}” is not a date (YYYY-MM-DD).")
    if "\x00" in value or "\x00" in str(rule.get("value2", "")):
        raise ValidationError(f"{field.label}: a value cannot hold a NUL character.")  # PostgreSQL's JSON refuses it
    if (
        field.type == DATE
        and op in {"within_last", "within_next"}
        and not (DIGITS.fullmatch(value) and 0 < int(value) <= 3650)
    ):
        raise ValidationError(f"{field.label}: a number of days from 1 to 3650.")
    if field.type == LIST and not DIGITS.fullmatch(value):
        raise ValidationError("Choose a mailing list.")
    if field.type == LIST and field.values is not None and int(value) not in field.values:
        raise ValidationError("Choose one of your team's mailing lists.")
    cleaned["value"] = value
    if op == "between":
        high = str(rule.get("value2", "")).strip()
        if _number(high) is None:
            raise ValidationError(f"{field.label} between: enter two numbers.")
        if not _in_range(_number(high)):
            raise ValidationError(f"{field.label}: “{high[:40]}” is out of range.")
        low = cleaned["value"]
        if _number(low) > _number(high):  # "between 10 and 5": the same range, said the usual way
            low, high = high, low
        cleaned["value"], cleaned["value2"] = low, high
    return cleaned


OPERATORS_ANY = {op: label for ops in OPERATORS.values() for op, label in ops.items()}
DEFAULT_LABELS = fields_for()  # the contact's own fields and lists: what every catalogue has


def conditions_rules(tree: Mapping | None) -> Iterator[Mapping]:
    """Every rule of a tree, in its groups too."""
    for rule in (tree or {}).get("rules", []):
        if "rules" in rule:
            yield from conditions_rules(rule)
        else:
            yield rule


def conditions_fields(tree: Mapping | None) -> set[str]:
    """Every field a tree names (what a property's "in use" warning looks for)."""
    return {rule["field"] for rule in conditions_rules(tree)}


def conditions_lists(tree: Mapping | None) -> set[int]:
    """The ids of the mailing lists a tree's rules name (what a list's delete confirmation looks for)."""
    values = (str(rule.get("value", "")) for rule in conditions_rules(tree) if rule["field"] == "lists")
    return {int(value) for value in values if DIGITS.fullmatch(value)}


# --- evaluating a tree ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """What a tree is evaluated on: a contact, the triggering event's properties, the contact's list ids."""

    contact: Any
    event: Mapping[str, Any]
    lists: frozenset[int] = frozenset()


def conditions_match(tree: Mapping | None, subject: Subject) -> bool:
    if not tree or not tree.get("rules"):
        return True
    results = (
        conditions_match(rule, subject) if "rules" in rule else _rule_matches(rule, subject) for rule in tree["rules"]
    )
    return any(results) if tree.get("match") == "any" else all(results)


def _value(name: str, subject: Subject) -> Any:
    if name == "lists":
        return subject.lists
    if name.startswith("contact.properties."):
        return (subject.contact.properties or {}).get(name.removeprefix("contact.properties."))
    if name.startswith("contact."):
        return getattr(subject.contact, name.removeprefix("contact."), None)
    if name.startswith("event."):
        return subject.event.get(name.removeprefix("event."))
    return None


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _rule_matches(rule: Mapping[str, Any], subject: Subject) -> bool:
    op, wanted = rule["op"], rule.get("value", "")
    actual = _value(rule["field"], subject)
    if op == "is_empty":
        return _empty(actual)
    if op == "is_not_empty":
        return not _empty(actual)
    if op in {"is_true", "is_false"}:
        truth = actual if isinstance(actual, bool) else str(actual).strip().lower() in {"true", "yes", "1"}
        return truth is (op == "is_true")
    if op in {"in_list", "not_in_list"}:
        inside = int(wanted) in (actual or ())
        return inside if op == "in_list" else not inside
    if op in TEXT_OPS:
        return TEXT_OPS[op]("" if _empty(actual) else str(actual).strip().lower(), wanted.lower())
    if op in NUMBER_OPS:
        number = _number(actual)
        return number is not None and NUMBER_OPS[op](number, _number(wanted), _number(rule.get("value2")))
    if op in DATE_OPS:
        when = _when(actual)
        return when is not None and DATE_OPS[op](when, wanted)
    raise ValueError(f"unknown condition {op!r}")


TEXT_OPS = {
    "equals": lambda actual, wanted: actual == wanted,
    "not_equals": lambda actual, wanted: actual != wanted,
    "contains": lambda actual, wanted: wanted in actual,
    "not_contains": lambda actual, wanted: wanted not in actual,
    "starts_with": lambda actual, wanted: actual.startswith(wanted),
}
NUMBER_OPS = {
    "eq": lambda n, a, b: n == a,
    "ne": lambda n, a, b: n != a,
    "lt": lambda n, a, b: n < a,
    "gt": lambda n, a, b: n > a,
    "between": lambda n, a, b: min(a, b) <= n <= max(a, b),
}


def _days(wanted: str) -> timedelta:
    return timedelta(days=int(wanted))


DATE_OPS = {
    "before": lambda when, wanted: when < _when(wanted),
    "after": lambda when, wanted: when > _when(wanted),
    "within_last": lambda when, wanted: timezone.now() - _days(wanted) <= when <= timezone.now(),
    "within_next": lambda when, wanted: timezone.now() <= when <= timezone.now() + _days(wanted),
}


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None  # NaN cannot be ordered: `<` on it raises InvalidOperation


def _in_range(number: Decimal) -> bool:
    return number.is_zero() or abs(number.adjusted()) <= NUMBER_EXPONENT_MAX


def _when(value: Any) -> datetime | None:
    """A datetime (aware) from a datetime, a date, an ISO string or a Unix time (seconds, Stripe's; milliseconds
    from EPOCH_MS_FROM, the API's). None for anything else, or a time that a datetime in UTC cannot hold."""
    when = _parsed_when(value)
    if when is not None:
        try:
            when.astimezone(UTC)  # "9999-12-31T23:59:59-01:00" is past datetime.max in UTC: no query can hold it
        except OverflowError:
            return None
    return when


def _parsed_when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if timezone.is_aware(value) else timezone.make_aware(value)
    if isinstance(value, date):
        return timezone.make_aware(datetime(value.year, value.month, value.day))
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not 0 <= value < EPOCH_MAX:
            return None
        seconds = value / 1000 if value >= EPOCH_MS_FROM else value
        try:
            return datetime.fromtimestamp(seconds, tz=timezone.get_current_timezone())
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            parsed = parse_datetime(text)
            if parsed is None and len(text) == 10:
                day = parse_date(text)
                parsed = datetime(day.year, day.month, day.day) if day else None
        except ValueError:
            return None
        if parsed is None:
            return None
        return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)
    return None


def conditions_describe(tree: Mapping | None, catalogue: Mapping[str, Field] | None = None) -> str:
    """The tree in words: `First name contains “ann” and (Plan is “Pro” or MRR > 100)`; "everyone" when empty."""
    if not tree or not tree.get("rules"):
        return "everyone"
    joiner = " or " if tree.get("match") == "any" else " and "
    parts = []
    for rule in tree["rules"]:
        if "rules" in rule:
            parts.append(f"({conditions_describe(rule, catalogue)})")
            continue
        field = (catalogue or DEFAULT_LABELS).get(rule["field"])
        label = field.label if field else rule["field"].removeprefix("contact.properties.").removeprefix("event.")
        words = OPERATORS_ANY.get(rule["op"], rule["op"])
        if rule["field"] == "lists" and field is not None:
            on = "on" if rule["op"] == "in_list" else "not on"
            value = str(rule.get("value", ""))
            list_id = int(value) if DIGITS.fullmatch(value) else 0
            if field.values is not None and list_id not in field.values:  # a saved tree named it: it was deleted
                parts.append(f"{on} a deleted list (#{value})")
            else:
                parts.append(f"{on} the list “{dict(field.choices).get(list_id, f'#{value}')}”")
        elif rule["op"] in UNARY:
            parts.append(f"{label} {words}")
        elif rule["op"] == "between":
            parts.append(f"{label} between {rule.get('value')} and {rule.get('value2')}")
        else:
            parts.append(f"{label} {words} “{rule.get('value', '')}”")
    return joiner.join(parts)
