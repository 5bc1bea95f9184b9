"""The filter builder's form (contacts.builder): a condition tree drawn as rows, read back from a post, changed by
its buttons and checked row by row."""

from django.http import QueryDict

from conftest import builder_post
from contacts.builder import ConditionsBuilder
from contacts.conditions import MAX_RULES, fields_for

CATALOGUE = fields_for(properties=[("seats", "Seats", "number")], lists={7: "VIP", 3: "alpha"})
NESTED = {
    "match": "any",
    "rules": [
        {"field": "contact.first_name", "op": "equals", "value": "Ada"},
        {
            "match": "all",
            "rules": [
                {"field": "contact.properties.seats", "op": "between", "value": "2", "value2": "9"},
                {"match": "any", "rules": [{"field": "lists", "op": "in_list", "value": "7"}]},
            ],
        },
    ],
}


def posted(data: dict) -> QueryDict:
    query = QueryDict(mutable=True)
    query.update(data)
    return query


def test_a_nested_tree_goes_through_the_form_unchanged():
    shown = ConditionsBuilder("c", CATALOGUE, tree=NESTED)
    assert [item.name for item in shown.root.items] == ["Rule 1", "Group 2"]
    assert shown.root.items[1].items[1].items[0].name == "Rule 2.2.1"
    assert ConditionsBuilder("c", CATALOGUE, data=posted(builder_post("c", NESTED))).tree() == NESTED


def test_its_buttons_add_and_remove_rules_and_groups_and_renumber_the_rest():
    data = builder_post("c", NESTED)
    added = ConditionsBuilder("c", CATALOGUE, data=posted({**data, "builder": "add_group:c-1"}))
    group = added.root.items[1]
    assert [item.prefix for item in group.items] == ["c-1-0", "c-1-1", "c-1-2"]
    assert group.items[2].group and group.items[2].items[0].prefix == "c-1-2-0"
    assert not group.items[1].can_nest  # the third level takes rules, not groups
    removed = ConditionsBuilder("c", CATALOGUE, data=posted({**data, "builder": "remove:c-0"}))
    assert [item.prefix for item in removed.root.items] == ["c-0"] and removed.root.items[0].group
    assert removed.tree() == {"match": "any", "rules": [NESTED["rules"][1]]}
    other = ConditionsBuilder("path-1-c", CATALOGUE, data=posted({**data, "builder": "add_rule:c"}))
    assert other.root.items[0].field == ""  # another builder's button changes nothing here


def test_each_refused_row_says_why_on_its_row_and_empty_rows_are_left_out():
    data = {
        **builder_post("c", {"rules": [{"field": "contact.first_name", "op": "equals", "value": "Ada"}]}),
        "c-1-field": "contact.properties.seats",
        "c-1-op": "gt",
        "c-1-value": "many",
        "c-2-field": "",
        "c-3-match": "all",  # a group with only an empty row
        "c-3-0-field": "",
    }
    builder = ConditionsBuilder("c", CATALOGUE, data=posted(data))
    assert builder.tree() is None and builder.has_errors
    assert [item.error for item in builder.root.items[:3]] == ["", "Seats: “many” is not a number.", ""]
    data["c-1-value"] = "3"
    assert ConditionsBuilder("c", CATALOGUE, data=posted(data)).tree() == {
        "match": "all",
        "rules": [
            {"field": "contact.first_name", "op": "equals", "value": "Ada"},
            {"field": "contact.properties.seats", "op": "gt", "value": "3"},
        ],
    }


def test_a_row_offers_its_fields_conditions_and_a_list_row_the_teams_lists():
    builder = ConditionsBuilder("c", CATALOGUE, tree=NESTED)
    first, seats = builder.root.items[0], builder.root.items[1].items[0]
    assert [kind for kind, _ in first.operators] == ["text"]
    assert [kind for kind, _ in seats.operators] == ["number"]
    assert builder.root.items[1].items[1].items[0].is_list
    assert builder.lists == ((3, "alpha"), (7, "VIP"))  # by name
    empty = ConditionsBuilder("c", CATALOGUE)
    assert len(empty.root.items) == 1 and len(empty.root.items[0].operators) == 5  # every type, to start


def test_what_a_post_can_make_is_bounded():
    deep = {"match": "all", "rules": [{"field": "contact.email", "op": "contains", "value": "@"}]}
    for _ in range(5):
        deep = {"match": "all", "rules": [deep]}
    builder = ConditionsBuilder("c", CATALOGUE, data=posted(builder_post("c", deep)))
    assert builder.tree() is None
    assert "Groups go at most 3 deep." in [item.error for item in builder.root.items[0].items[0].items]
    many = {f"c-{n}-field": "contact.email" for n in range(MAX_RULES + 30)}
    assert len(ConditionsBuilder("c", CATALOGUE, data=posted(many)).root.items) == MAX_RULES
    full = {**many, "builder": "add_rule:c"}
    assert len(ConditionsBuilder("c", CATALOGUE, data=posted(full)).root.items) == MAX_RULES


def test_digits_that_are_not_ascii_are_refused_not_a_server_error():
    for rule in [
        {"field": "lists", "op": "in_list", "value": "²"},
        {"field": "contact.created_at", "op": "within_last", "value": "²"},
        {"field": "contact.created_at", "op": "within_last", "value": "٣"},
    ]:
        builder = ConditionsBuilder("c", CATALOGUE, data=posted(builder_post("c", {"rules": [rule]})))
        assert builder.tree() is None and builder.root.items[0].error
