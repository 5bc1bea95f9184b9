"""Conditions (the filter builder's JSON): checked against the fields a team can pick, evaluated by type."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from contacts.conditions import (
    MAX_RULES,
    Subject,
    conditions_clean,
    conditions_describe,
    conditions_lists,
    conditions_match,
    fields_for,
)
from contacts.models import Contact

CATALOGUE = fields_for(
    properties=[("plan", "Plan", "string"), ("seats", "Seats", "number"), ("renews", "Renews", "date")],
    event_properties={"amount": "number", "paid": "boolean"},
)


def rule(field, op, value="", **extra):
    return {"field": field, "op": op, "value": value, **extra}


def matches(tree, contact=None, event=None, lists=()):
    return conditions_match(tree, Subject(contact=contact or Contact(), event=event or {}, lists=frozenset(lists)))


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (rule("contact.first_name", "equals", "ADA"), True),
        (rule("contact.first_name", "not_equals", "ada"), False),
        (rule("contact.email", "contains", "@example."), True),
        (rule("contact.email", "not_contains", "@example."), False),
        (rule("contact.email", "starts_with", "ada@"), True),
        (rule("contact.last_name", "is_empty"), True),
        (rule("contact.properties.plan", "is_not_empty"), True),
        (rule("contact.properties.seats", "gt", "4"), True),
        (rule("contact.properties.seats", "lt", "4"), False),
        (rule("contact.properties.seats", "between", "5", value2="10"), True),
        (rule("contact.properties.seats", "eq", "5.0"), True),
        (rule("contact.properties.renews", "within_next", "30"), True),
        (rule("contact.properties.renews", "within_last", "30"), False),
        (rule("contact.properties.renews", "after", "2000-01-01"), True),
        (rule("contact.subscribed", "is_true"), True),
        (rule("event.paid", "is_false"), True),
        (rule("event.amount", "gt", "100"), True),
        (rule("lists", "in_list", "7"), True),
        (rule("lists", "not_in_list", "8"), True),
    ],
)
def test_each_operator_by_type(condition, expected):
    contact = Contact(
        email="ada@example.com",
        first_name="Ada",
        properties={"plan": "Pro", "seats": 5, "renews": (timezone.now() + timedelta(days=10)).isoformat()},
    )
    tree = conditions_clean({"match": "all", "rules": [condition]}, CATALOGUE)
    assert matches(tree, contact, {"amount": 2500, "paid": False}, lists=[7]) is expected


def test_groups_combine_with_and_and_or():
    contact = Contact(email="ada@example.com", first_name="Ada", properties={"plan": "Free"})
    tree = conditions_clean(
        {
            "match": "all",
            "rules": [
                rule("contact.email", "contains", "example"),
                {
                    "match": "any",
                    "rules": [
                        rule("contact.properties.plan", "equals", "Pro"),
                        rule("contact.first_name", "equals", "ada"),
                    ],
                },
            ],
        },
        CATALOGUE,
    )
    assert matches(tree, contact)
    assert conditions_describe(tree, CATALOGUE) == "Email contains “example” and (Plan is “Pro” or First name is “ada”)"
    assert conditions_describe(tree) == "Email contains “example” and (plan is “Pro” or First name is “ada”)"
    assert matches({"match": "all", "rules": []}) and matches(None)  # the catch-all matches everyone


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        ({"rules": [rule("contact.properties.favourite_colour", "equals", "red")]}, "Unknown field"),
        ({"rules": [rule("contact.subscribed", "contains", "x")]}, "does not apply to"),
        ({"rules": [rule("contact.properties.seats", "gt", "many")]}, "is not a number"),
        ({"rules": [rule("contact.properties.renews", "before", "soon")]}, "is not a date"),
        ({"rules": [rule("contact.first_name", "equals", "")]}, "enter a value"),
        ({"rules": [rule("contact.first_name", "equals", "x" * 300)]}, "at most 255 characters"),
        ({"rules": [rule("contact.email", "contains", "a")] * (MAX_RULES + 1)}, f"at most {MAX_RULES} rules"),
        ({"rules": [{"rules": [{"rules": [{"rules": []}]}]}]}, "at most 3 deep"),
        ({"match": "some", "rules": []}, "“all” or “any”"),
        ({"rules": [rule("contact.properties.seats", "gt", "NaN")]}, "is not a number"),
        ({"rules": [rule("contact.properties.seats", "between", "1", value2="Infinity")]}, "enter two numbers"),
        ({"rules": [rule("contact.properties.seats", "between", "NaN", value2="5")]}, "is not a number"),
        ({"rules": [rule("contact.first_name", "equals", "a\x00b")]}, "NUL character"),
    ],
)
def test_a_tree_that_cannot_work_is_refused_with_what_is_wrong(tree, message):
    with pytest.raises(ValidationError, match=message):
        conditions_clean(tree, CATALOGUE)


def test_a_value_that_is_not_a_finite_number_matches_no_number_rule():
    tree = {"rules": [rule("event.amount", "gt", "5")]}
    assert not matches(tree, event={"amount": "NaN"}) and not matches(tree, event={"amount": "sNaN"})
    assert matches(tree, event={"amount": "6"})


def test_a_date_in_unix_milliseconds_as_the_api_takes_it_is_read_as_a_date_not_an_error():
    renews = Contact(properties={"renews": int((timezone.now() + timedelta(days=3)).timestamp() * 1000)})
    assert matches({"rules": [rule("contact.properties.renews", "within_next", "7")]}, renews)
    assert not matches({"rules": [rule("contact.properties.renews", "before", "2000-01-01")]}, renews)
    assert not matches(
        {"rules": [rule("contact.properties.renews", "after", "2000-01-01")]}, Contact(properties={"renews": 10**18})
    )


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_a_date_no_query_can_hold_is_refused(value):
    with pytest.raises(ValidationError, match="is not a date"):
        conditions_clean({"rules": [rule("contact.created_at", "before", value)]}, CATALOGUE)


@pytest.mark.parametrize("value", ["1e400", "1e-400", "-1E+999999999"])
def test_a_number_past_any_column_is_refused(value):
    with pytest.raises(ValidationError, match="out of range"):
        conditions_clean({"rules": [rule("contact.properties.seats", "gt", value)]}, CATALOGUE)


def test_the_lists_a_tree_names_and_a_deleted_one_in_words():
    tree = {
        "match": "all",
        "rules": [
            {"field": "lists", "op": "in_list", "value": "7"},
            {"match": "any", "rules": [{"field": "lists", "op": "not_in_list", "value": "9"}]},
            {"field": "contact.email", "op": "contains", "value": "7"},
        ],
    }
    assert conditions_lists(tree) == {7, 9} and conditions_lists(None) == set()
    catalogue = fields_for(lists={7: "VIP"})
    assert conditions_describe(tree, catalogue) == (
        "on the list “VIP” and (not on a deleted list (#9)) and Email contains “7”"
    )
    assert conditions_describe(tree) == "on the list “#7” and (not on the list “#9”) and Email contains “7”"
