"""A condition tree (contacts.conditions) as a database filter on contacts: what the Audience, its segments and
bulk actions select with. It matches what `conditions_match` decides for one contact in memory: text compared
without case, numbers and dates by value, a missing property as empty.

A property's value lives in `Contact.properties` (JSON). A number is compared only where the value is one
(`JSONNumber`: no cast of a text value can fail the query); a date property is ISO text, compared as text with the
day (before, after) or the ISO form of the bound (within the last or next N days), or a Unix time (`_epoch_q`).
A property's key is always a parameter, never part of a lookup path. Event properties have no place
here (there is no triggering event): a tree that names one is refused by the catalogue before it gets here.
"""

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Exists, F, FloatField, Func, JSONField, OuterRef, Q, TextField, Value
from django.db.models.fields.json import HasKey, KeyTextTransform, KeyTransform, KeyTransformExact, KeyTransformIExact
from django.db.models.functions import Lower, Trim
from django.db.models.lookups import (
    Contains,
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    LessThan,
    LessThanOrEqual,
    Regex,
    StartsWith,
)
from django.utils import timezone

from .conditions import CONTACT_FIELD_TYPES, DATE, EPOCH_MAX, EPOCH_MS_FROM, _when
from .models import ListMembership


class _JSONValue(Func):
    """A property's value where its JSON type is `json_type`, else NULL (compares false), on PostgreSQL and SQLite.
    The key is a parameter (never a lookup name: a property may be called `contains` or `in`)."""

    json_type = ""  # PostgreSQL's jsonb_typeof
    sqlite_types: tuple[str, ...] = ()
    cast = ""

    def __init__(self, key: str):
        super().__init__(F("properties"), Value(key), Value("$." + json.dumps(key)))

    def as_postgresql(self, compiler, connection, **extra):
        column, key, _ = (compiler.compile(expression) for expression in self.source_expressions)
        sql = (
            f"(CASE WHEN jsonb_typeof({column[0]} -> {key[0]}) = '{self.json_type}' "
            f"THEN ({column[0]} ->> {key[0]}){self.cast} END)"
        )
        return sql, (*column[1], *key[1], *column[1], *key[1])

    def as_sqlite(self, compiler, connection, **extra):
        column, _, path = (compiler.compile(expression) for expression in self.source_expressions)
        types = ", ".join(f"'{kind}'" for kind in self.sqlite_types)
        value = f"json_extract({column[0]}, {path[0]})"
        sql = f"(CASE WHEN json_type({column[0]}, {path[0]}) IN ({types}) THEN {value} END)"
        return sql, (*column[1], *path[1], *column[1], *path[1])


class JSONNumber(_JSONValue):
    """A property's value as a number where it is one. On PostgreSQL a numeric, compared with numeric bounds
    (`_Number`): exact as `conditions_match`'s Decimal is, and no integer past a double's range can fail the query."""

    output_field = FloatField()
    json_type, sqlite_types, cast = "number", ("integer", "real"), "::numeric"


class JSONText(_JSONValue):
    """A property's value where it is JSON text, compared byte by byte (COLLATE "C" on PostgreSQL: an ISO date
    sorts as its characters do, whatever the database's collation)."""

    output_field = TextField()
    json_type, sqlite_types, cast = "string", ("text",), ' COLLATE "C"'


class _Number(Func):
    """A rule's number as a query parameter: numeric on PostgreSQL (beside JSONNumber), a float on SQLite."""

    output_field = FloatField()

    def __init__(self, number: Decimal | float):
        super().__init__()
        self.number = number

    def as_sql(self, compiler, connection, **extra):
        return "%s", (float(self.number),)

    def as_postgresql(self, compiler, connection, **extra):
        return "%s::numeric", (str(Decimal(self.number)),)


def conditions_q(tree: Mapping | None) -> Q:
    """The contacts the tree matches (every contact for an empty tree)."""
    if not tree or not tree.get("rules"):
        return Q()
    parts = [conditions_q(rule) if "rules" in rule else _rule_q(rule) for rule in tree["rules"]]
    combined = parts[0]
    for part in parts[1:]:
        combined = combined | part if tree.get("match") == "any" else combined & part
    return combined


def _rule_q(rule: Mapping) -> Q:
    name, op, value = rule["field"], rule["op"], rule.get("value", "")
    if name == "lists":
        member = Exists(ListMembership.objects.filter(contact=OuterRef("pk"), mailing_list_id=int(value)))
        return Q(member) if op == "in_list" else ~Q(member)
    if name.startswith("contact.properties."):
        return _property_q(name.removeprefix("contact.properties."), rule)
    field = name.removeprefix("contact.")
    kind = CONTACT_FIELD_TYPES.get(field)
    if kind is None:
        raise ValueError(f"cannot filter contacts on {name!r}")
    if kind == "boolean":
        return Q(**{field: op == "is_true"})
    if kind == DATE:  # created_at: never empty
        if op in {"is_empty", "is_not_empty"}:
            return Q() if op == "is_not_empty" else Q(pk__in=[])
        if op == "before":
            return Q(**{f"{field}__lt": _when(value)})
        if op == "after":
            return Q(**{f"{field}__gt": _when(value)})
        low, high = _date_bounds(op, value)
        return Q(**{f"{field}__gte": low, f"{field}__lt": high})
    return _text_q(field, op, value)


def _text_q(column: str, op: str, value: str) -> Q:
    empty = Q(**{column: ""}) | Q(**{f"{column}__isnull": True})
    if op == "is_empty":
        return empty
    if op == "is_not_empty":
        return ~empty
    lookup = {"equals": "iexact", "not_equals": "iexact", "contains": "icontains", "not_contains": "icontains",
              "starts_with": "istartswith"}[op]  # fmt: skip
    match = Q(**{f"{column}__{lookup}": value})
    if op in {"not_equals", "not_contains"}:  # in memory an empty value is "" (so it "is not" anything)
        return ~match | empty
    return match


def _property_q(key: str, rule: Mapping) -> Q:
    op, value = rule["op"], rule.get("value", "")
    # The key as an expression, never spliced into a lookup path ("properties__<key>"): a key named `contains`,
    # `in` or `isnull` would be read as that lookup, one with `__` as a path into the value.
    present = Q(HasKey(F("properties"), key)) & ~_json_is(key, None) & ~_json_is(key, "")
    if op == "is_empty":
        return ~present
    if op == "is_not_empty":
        return present
    if op in {"is_true", "is_false"}:
        truth = present & (_json_is(key, True) | Q(KeyTransformIExact(KeyTransform(key, "properties"), "true")))
        return truth if op == "is_true" else ~present | (present & ~truth)  # missing is false, never NULL
    if op in {"eq", "ne", "lt", "gt", "between"}:
        number, low = JSONNumber(key), _Number(Decimal(value))
        if op == "between":
            bounds = sorted((Decimal(value), Decimal(rule.get("value2", ""))))
            return Q(GreaterThanOrEqual(number, _Number(bounds[0]))) & Q(LessThanOrEqual(number, _Number(bounds[1])))
        if op == "ne":  # a number, and another one
            return Q(LessThan(number, low)) | Q(GreaterThan(number, low))
        return Q({"eq": Exact, "lt": LessThan, "gt": GreaterThan}[op](JSONNumber(key), low))
    if op in {"before", "after", "within_last", "within_next"}:
        return _date_property_q(key, op, value)
    # Text: trimmed and without case, as in memory (a property's value is kept as it was sent)
    text = Lower(Trim(KeyTextTransform(key, "properties")))
    lookup = {"equals": Exact, "not_equals": Exact, "contains": Contains, "not_contains": Contains,
              "starts_with": StartsWith}[op]  # fmt: skip
    match = Q(lookup(text, value.lower()))
    return (~match | ~present) if op in {"not_equals", "not_contains"} else match


def _json_is(key: str, value: str | bool | None) -> Q:
    """The property's JSON value is `value` (None: JSON null), as `properties__<key>=value` would say."""
    return Q(KeyTransformExact(KeyTransform(key, "properties"), Value(value, output_field=JSONField())))


def _date_property_q(key: str, op: str, value: str) -> Q:
    """A date property is ISO text or a Unix time (seconds, or milliseconds from EPOCH_MS_FROM), as `_when` reads
    it in memory; any other value (empty, a word) is no date and matches no date rule."""
    text = JSONText(key)
    iso = Q(Regex(text, r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"))
    if op in {"before", "after"}:  # ISO text against the day: "2027-01-31T10:00" is after 2027-01-31, not before
        compare = LessThan if op == "before" else GreaterThan
        return (iso & Q(compare(text, Value(value)))) | _epoch_q(key, compare, _when(value))
    low, high = _date_bounds(op, value)
    return (iso & Q(GreaterThanOrEqual(text, Value(low.isoformat()))) & Q(LessThan(text, Value(high.isoformat())))) | (
        _epoch_q(key, GreaterThanOrEqual, low) & _epoch_q(key, LessThan, high)
    )


def _epoch_q(key: str, compare, when: datetime) -> Q:
    """A numeric date property (Unix seconds, or milliseconds from EPOCH_MS_FROM) compared with `when`."""
    number, at = JSONNumber(key), Decimal(str(when.timestamp()))
    seconds = Q(GreaterThanOrEqual(number, _Number(0))) & Q(LessThan(number, _Number(EPOCH_MS_FROM)))
    millis = Q(GreaterThanOrEqual(number, _Number(EPOCH_MS_FROM))) & Q(LessThan(number, _Number(EPOCH_MAX)))
    return (seconds & Q(compare(number, _Number(at)))) | (millis & Q(compare(JSONNumber(key), _Number(at * 1000))))


def _date_bounds(op: str, value: str) -> tuple[datetime, datetime]:
    """[low, high) of a "within the last/next N days" rule, as `conditions_match` reads it."""
    now = timezone.now()
    days = timedelta(days=int(value))
    if op == "within_last":
        return now - days, now + timedelta(microseconds=1)
    return now, now + days + timedelta(microseconds=1)
