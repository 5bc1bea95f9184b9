from django import template

from contacts.conditions import conditions_describe

register = template.Library()


@register.filter
def conditions_text(tree, catalogue=None) -> str:
    """A condition tree in words, with the labels and list names of `catalogue` (the loop's fields, when the view
    gives them), escaped by the template as any text."""
    return conditions_describe(tree, catalogue or None)


@register.filter
def get_item(mapping, key):
    """`mapping[key]`, or "" when it has none."""
    return mapping.get(key, "") if hasattr(mapping, "get") else ""
