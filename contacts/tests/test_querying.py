"""A condition tree as a database filter (contacts.querying) selects exactly the contacts `conditions_match` takes
one by one in memory: the same rules, checked both ways over the same contacts, on PostgreSQL and on SQLite."""

from datetime import timedelta

import pytest
from django.utils import timezone

from contacts.conditions import OPERATORS, UNARY, Subject, conditions_clean, conditions_match, fields_for
from contacts.models import Contact, ListMembership, MailingList
from contacts.querying import conditions_q

pytestmark = pytest.mark.django_db

PROPERTIES = [("plan", "Plan", "string"), ("seats", "Seats", "number"), ("vip", "VIP", "boolean"),
              ("renews", "Renews", "date")]  # fmt: skip


@pytest.fixture
def contacts(team, other_team):
    soon = (timezone.now() + timedelta(days=3)).date().isoformat()
    made = [
        Contact.objects.create(team=team, email="ada@example.com", first_name="Ada", source="api",
                               properties={"plan": "Pro", "seats": 3, "vip": True, "renews": soon}),
        Contact.objects.create(team=team, email="alan@example.com", first_name="Alan", user_group="beta",
                               properties={"plan": "pro ", "seats": 12.5, "vip": False, "renews": "2025-01-01"}),
        Contact.objects.create(team=team, email="grace@navy.test", first_name="", subscribed=False,
                               unsubscribed_by="team", properties={"seats": "many", "renews": "2030-06-30T10:00:00"}),
        Contact.objects.create(team=team, email="edsger@example.com", last_name="Dijkstra", properties={}),
    ]  # fmt: skip
    Contact.objects.filter(pk=made[3].pk).update(created_at=timezone.now() - timedelta(days=40))
    Contact.objects.create(team=other_team, email="other@example.com", first_name="Ada")
    return made


RULES = [
    ("contact.first_name", "equals", "ada"), ("contact.first_name", "not_equals", "Ada"),
    ("contact.first_name", "contains", "A"), ("contact.first_name", "not_contains", "la"),
    ("contact.email", "starts_with", "AL"), ("contact.first_name", "is_empty", ""),
    ("contact.first_name", "is_not_empty", ""), ("contact.user_group", "equals", "beta"),
    ("contact.subscribed", "is_true", ""), ("contact.subscribed", "is_false", ""),
    ("contact.created_at", "within_last", "7"), ("contact.created_at", "before", "2099-01-01"),
    ("contact.properties.plan", "equals", "pro"), ("contact.properties.plan", "not_equals", "pro"),
    ("contact.properties.plan", "is_empty", ""), ("contact.properties.plan", "is_not_empty", ""),
    ("contact.properties.plan", "starts_with", "P"), ("contact.properties.seats", "gt", "5"),
    ("contact.properties.seats", "lt", "5"), ("contact.properties.seats", "eq", "3"),
    ("contact.properties.seats", "ne", "3"), ("contact.properties.seats", "between", "3"),
    ("contact.properties.seats", "is_empty", ""), ("contact.properties.vip", "is_true", ""),
    ("contact.properties.vip", "is_false", ""), ("contact.properties.renews", "before", "2026-01-01"),
    ("contact.properties.renews", "after", "2030-06-30"), ("contact.properties.renews", "within_next", "10"),
    ("contact.properties.renews", "within_last", "10"), ("contact.properties.renews", "is_not_empty", ""),
]  # fmt: skip


def test_every_rule_selects_what_it_matches_in_memory(team, contacts):
    catalogue = fields_for(properties=PROPERTIES)
    for name, op, value in RULES:
        rule = {"field": name, "op": op, "value": value, "value2": "13" if op == "between" else ""}
        tree = conditions_clean({"match": "all", "rules": [rule]}, catalogue)
        selected = set(Contact.objects.filter(team=team).filter(conditions_q(tree)).values_list("pk", flat=True))
        expected = {c.pk for c in Contact.objects.filter(team=team) if conditions_match(tree, Subject(c, {}))}
        assert selected == expected, (name, op, value)


def test_groups_and_lists_combine_as_in_memory(team, contacts):
    vip = MailingList.objects.create(team=team, name="VIP")
    ListMembership.objects.create(team=team, mailing_list=vip, contact=contacts[1])
    catalogue = fields_for(properties=PROPERTIES, lists=[vip.pk])
    tree = conditions_clean(
        {
            "match": "any",
            "rules": [
                {"field": "lists", "op": "in_list", "value": str(vip.pk)},
                {
                    "match": "all",
                    "rules": [
                        {"field": "contact.email", "op": "contains", "value": "example"},
                        {"field": "lists", "op": "not_in_list", "value": str(vip.pk)},
                        {"field": "contact.properties.seats", "op": "is_empty"},
                    ],
                },
            ],
        },
        catalogue,
    )
    selected = set(Contact.objects.filter(team=team).filter(conditions_q(tree)).values_list("email", flat=True))
    assert selected == {"alan@example.com", "edsger@example.com"}
    for contact in Contact.objects.filter(team=team):
        lists = frozenset(contact.listmembership_set.values_list("mailing_list_id", flat=True))
        assert conditions_match(tree, Subject(contact, {}, lists)) is (contact.email in selected)
    assert Contact.objects.filter(conditions_q({"match": "all", "rules": []})).count() == 5  # empty: everyone


# Every value a contact's property can hold after the API, the app or an import checked it against its type (text,
# a finite number of any size, true/false, ISO text or a Unix time in seconds or milliseconds), and the values of
# untyped ones the Audience still meets (an empty string, a word in a date property)
WRITTEN = {
    "plan": ["Pro", "pro ", "", "a%b", "a_b", "Straße"],
    "seats": [3, 3.0, 12.5, -1, 0, 10**20, 9_007_199_254_740_993, 10**400],
    "vip": [True, False],
    "renews": ["2025-01-01", "2030-06-30T10:00:00", "2027-01-31 10:00", "", "soon", 1_767_225_600, 1_767_225_600_000],
}
VALUES = {
    "plan": ["pro", "%", "_", "straße"],
    "seats": ["3", "0", "9007199254740992", "100000000000000000000"],
    "renews": ["2027-01-31", "2025-01-01", "2030-06-30", "7", "400"],
}


def test_every_rule_agrees_with_memory_on_every_value_the_write_paths_accept(team):
    in_a_week = int((timezone.now() + timedelta(days=7)).timestamp() * 1000)
    for key, values in WRITTEN.items():
        for value in [*values, *([in_a_week, in_a_week // 1000] if key == "renews" else [])]:
            Contact.objects.create(team=team, email=f"{key}{Contact.objects.count()}@x.test", properties={key: value})
    catalogue = fields_for(properties=PROPERTIES)
    kinds = {"plan": "text", "seats": "number", "vip": "boolean", "renews": "date"}
    disagree = []
    for key, kind in kinds.items():
        for op in OPERATORS[kind]:
            for value in [""] if op in UNARY else VALUES[key]:
                if kind == "date" and (op in {"before", "after"}) == value.isdigit():
                    continue  # a day for before/after, a number of days for within
                rule = {"field": f"contact.properties.{key}", "op": op, "value": value, "value2": "13"}
                tree = conditions_clean({"rules": [rule]}, catalogue)
                selected = set(
                    Contact.objects.filter(team=team).filter(conditions_q(tree)).values_list("pk", flat=True)
                )
                expected = {c.pk for c in Contact.objects.filter(team=team) if conditions_match(tree, Subject(c, {}))}
                disagree += [(key, op, value, Contact.objects.get(pk=pk).properties) for pk in selected ^ expected]
    assert disagree == []


@pytest.mark.parametrize("key", ["contains", "in", "exact", "isnull", "lt", "has_key", "plan__name"])
def test_a_property_named_like_a_lookup_is_filtered_as_any_other(team, key):
    Contact.objects.create(team=team, email="set@x.test", properties={key: "Pro"})
    Contact.objects.create(team=team, email="unset@x.test", properties={"plan": {"name": "Pro"}})
    catalogue = fields_for(properties=[(key, key, "string")])
    for op, expected in [("is_not_empty", ["set@x.test"]), ("is_empty", ["unset@x.test"])]:
        tree = conditions_clean({"rules": [{"field": f"contact.properties.{key}", "op": op}]}, catalogue)
        assert sorted(Contact.objects.filter(conditions_q(tree)).values_list("email", flat=True)) == expected
    tree = conditions_clean(
        {"rules": [{"field": f"contact.properties.{key}", "op": "equals", "value": "pro"}]}, catalogue
    )
    assert list(Contact.objects.filter(conditions_q(tree)).values_list("email", flat=True)) == ["set@x.test"]
