"""A condition tree (contacts.conditions) as a database filter on contacts: what the Audience, its segments and
bulk actions select with. It matches what `conditions_match` decides for one contact in memory: text compared
without case, numbers and dates by value, a missing property as empty.

A property's value lives in `Contact.properties` (JSON). A number is compared only where the value is one
(`JSONNumber`: no cast of a text value can fail the query); a date property is ISO text, compared as text with the
day (before, after) or the ISO form of the bound (within the last or next N days). Event properties have no place
here (there is no triggering event): a tree that names one is refused by the catalogue before it gets here.
"""

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Exists, F, FloatField, Func, OuterRef, Q, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Lower, Trim
from django.db.models.lookups import (
    Contains,
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    LessThan,
    LessThanOrEqual,
    StartsWith,
)
from django.utils import timezone

from .conditions import CONTACT_FIELD_TYPES, DATE, _when
from .models import ListMembership


class JSONNumber(Func):
    """A property's value as a number where it is one, else NULL (compares false), on PostgreSQL and SQLite."""

    output_field = FloatField()

    def __init__(self, key: str):
        super().__init__(F("properties"), Value(key))

    def as_postgresql(self, compiler, connection, **extra):
        column, key = (compiler.compile(expression) for expression in self.source_expressions)
        sql = (
            f"(CASE WHEN jsonb_typeof({column[0]} -> {key[0]}) = 'number' "
            f"THEN ({column[0]} ->> {key[0]})::double precision END)"
        )
        return sql, (*column[1], *key[1], *column[1], *key[1])

    def as_sqlite(self, compiler, connection, **extra):
        column, key = (compiler.compile(expression) for expression in self.source_expressions)
        path = f"'$.\"' || {key[0]} || '\"'"
        sql = (
            f"(CASE WHEN json_type({column[0]}, {path}) IN ('integer', 'real') "
            f"THEN json_extract({column[0]}, {path}) END)"
        )
        return sql, (*column[1], *key[1], *column[1], *key[1])


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
    present = Q(properties__has_key=key) & ~Q(**{f"properties__{key}": None}) & ~Q(**{f"properties__{key}": ""})
    if op == "is_empty":
        return ~present
    if op == "is_not_empty":
        return present
    if op in {"is_true", "is_false"}:
        truth = present & (Q(**{f"properties__{key}": True}) | Q(**{f"properties__{key}__iexact": "true"}))
        return truth if op == "is_true" else ~present | (present & ~truth)  # missing is false, never NULL
    if op in {"eq", "ne", "lt", "gt", "between"}:
        number, low = JSONNumber(key), float(Decimal(value))
        if op == "between":
            high = float(Decimal(rule.get("value2", "")))
            return Q(GreaterThanOrEqual(number, min(low, high))) & Q(LessThanOrEqual(number, max(low, high)))
        if op == "ne":  # a number, and another one
            return Q(LessThan(number, low)) | Q(GreaterThan(number, low))
        return Q({"eq": Exact, "lt": LessThan, "gt": GreaterThan}[op](number, low))
    if op in {"before", "after"}:  # ISO text against the day: "2027-01-31T10:00" is after 2027-01-31, not before
        text = KT(f"properties__{key}")
        return Q(LessThan(text, Value(value))) if op == "before" else Q(GreaterThan(text, Value(value)))
    if op in {"within_last", "within_next"}:
        text = KT(f"properties__{key}")
        low, high = _date_bounds(op, value)
        return Q(GreaterThanOrEqual(text, Value(low.isoformat()))) & Q(LessThan(text, Value(high.isoformat())))
    # Text: trimmed and without case, as in memory (a property's value is kept as it was sent)
    text = Lower(Trim(KT(f"properties__{key}")))
    lookup = {"equals": Exact, "not_equals": Exact, "contains": Contains, "not_contains": Contains,
              "starts_with": StartsWith}[op]  # fmt: skip
    match = Q(lookup(text, value.lower()))
    return (~match | ~present) if op in {"not_equals", "not_contains"} else match


def _date_bounds(op: str, value: str) -> tuple[datetime, datetime]:
    """[low, high) of a "within the last/next N days" rule, as `conditions_match` reads it."""
    now = timezone.now()
    days = timedelta(days=int(value))
    if op == "within_last":
        return now - days, now + timedelta(microseconds=1)
    return now, now + days + timedelta(microseconds=1)
