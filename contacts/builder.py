"""The filter builder as a form: a condition tree (contacts.conditions) drawn as rows and groups, read back
from a post, and checked row by row. Loop filters and branch paths use it, and so will the Audience.

Its inputs are named by their place in the tree. The group at prefix P has `P-match` (all or any); its i-th item
is a rule, with `P-i-field`, `P-i-op`, `P-i-value` and `P-i-value2`, or a group, with `P-i-match` and items of
its own. The builder's buttons post `builder=<action>:<prefix>`:

- `add_rule:P` adds an empty rule to the group P;
- `add_group:P` adds a group with one empty rule to P (at most MAX_DEPTH deep);
- `remove:P` removes the rule or group P;
- `refresh:` changes nothing (a field was picked, and its conditions are offered).

The form comes back with the change and nothing saved. Without JavaScript the buttons are plain submit buttons;
with htmx they swap the form in place.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as default
from typing import Any

from django.core.exceptions import ValidationError

from .conditions import DIGITS, LIST, MAX_DEPTH, MAX_RULES, OPERATORS, UNARY, Field, conditions_clean

ACTION = "builder"  # the name of the builder's buttons


@dataclass
class Item:
    """A rule, or a group of items (`group`), at its place in the form (`prefix`)."""

    prefix: str
    depth: int  # 1: the top group
    group: bool = False
    match: str = "all"
    items: list["Item"] = default(default_factory=list)
    field: str = ""
    op: str = ""
    value: str = ""
    value2: str = ""
    error: str = ""
    # What the template draws, set by the builder: the row's name ("Rule 2", "Rule 3.1" in a group, "Path 2
    # rule 1" in a form with several builders), the conditions its field takes, by type, and whether its value
    # is a mailing list
    name: str = ""
    operators: list[tuple[str, list[tuple[str, str]]]] = default(default_factory=list)
    is_list: bool = False

    @property
    def can_nest(self) -> bool:
        return self.group and self.depth < MAX_DEPTH

    @property
    def unary(self) -> bool:
        return self.op in UNARY


def builder_action(data: Mapping[str, Any]) -> tuple[str, str] | None:
    """The builder button a post was sent with, as (action, prefix), or None for a plain save."""
    action, _, prefix = str(data.get(ACTION, "")).partition(":")
    return (action, prefix) if action else None


class ConditionsBuilder:
    """One condition tree in a form, at `prefix`. From a post (`data`) it reads what was typed and applies the
    builder button it was sent with; otherwise it shows `tree`. `tree()` gives the checked tree, or None with
    each row's mistake on its row (`errors`)."""

    def __init__(
        self, prefix: str, catalogue: Mapping[str, Field], *, data=None, tree: Mapping | None = None, title: str = ""
    ):
        self.prefix = prefix
        self.title = title  # what its rows' labels start with when a form has several builders: "Path 2"
        self.catalogue = catalogue
        self.acting = False  # sent with one of its buttons: a row being built, not a filter to check yet
        if data is not None:
            self.root = _read(data, prefix, depth=1)
            action = builder_action(data)
            self.acting = bool(action)
            if action and (action[1] == prefix or action[1].startswith(prefix + "-")):
                _apply(self.root, *action)
        else:
            self.root = _from_tree(tree or {}, prefix, depth=1)
        if not self.root.items:
            self.root.items.append(Item("", depth=1))
        self.error = ""
        for item in _all(self.root):
            known = catalogue.get(item.field)
            item.operators = [(kind, list(OPERATORS[kind].items())) for kind in ([known.type] if known else OPERATORS)]
            item.is_list = bool(known and known.type == LIST)
            if self.acting and known and item.op not in OPERATORS[known.type]:
                item.op = next(iter(OPERATORS[known.type]))  # a field just picked: its type's first condition
        self.rename(prefix, title)

    def rename(self, prefix: str, title: str) -> None:
        """Put the builder at `prefix` (its inputs' names) with `title` (its labels): also when a form moves it."""
        self.prefix, self.title = prefix, title
        _renumber(self.root, prefix)
        for item in _all(self.root):
            number = ".".join(str(int(n) + 1) for n in item.prefix[len(prefix) + 1 :].split("-"))
            kind = "group" if item.group else "rule"
            item.name = f"{title} {kind} {number}" if title else f"{kind.title()} {number}"
        self.root.name = title or "Conditions"

    @property
    def empty(self) -> bool:
        """No rule names a field: the tree matches everyone (a branch's catch-all)."""
        return not any(item.field for item in _all(self.root) if not item.group)

    # --- what the template draws -------------------------------------------------------------------

    @property
    def fields(self) -> list[tuple[str, str, str]]:
        return [(name, f.label, f.type) for name, f in self.catalogue.items()]

    @property
    def lists(self) -> tuple[tuple[int, str], ...]:
        lists = self.catalogue.get("lists")
        return lists.choices if lists else ()

    # --- reading it back ---------------------------------------------------------------------------

    def tree(self, *, lenient: bool = False) -> dict | None:
        """The tree the rows make (rows without a field and empty groups left out), checked against the
        catalogue; None if a row or the whole is refused, with the reasons on the rows and in `error`. `lenient`:
        the rows that cannot be used yet are left out too, without a word (a form sent by a builder button)."""
        tree = self._tree(self.root)
        if lenient:
            for item in _all(self.root):
                item.error = ""
        elif any(item.error for item in _all(self.root)):
            return None
        try:
            return conditions_clean(tree, self.catalogue)
        except ValidationError as exc:  # too many rules, too deep: about the whole
            self.error = " ".join(exc.messages)
            return None

    def _tree(self, group: Item) -> dict:
        rules: list[dict] = []
        for item in group.items:
            if item.group:
                nested = self._tree(item)
                if nested["rules"]:
                    rules.append(nested)
            elif item.field:
                rule = {"field": item.field, "op": item.op, "value": item.value, "value2": item.value2}
                try:
                    rules.append(conditions_clean({"rules": [rule]}, self.catalogue)["rules"][0])
                except ValidationError as exc:
                    item.error = " ".join(exc.messages)
        return {"match": group.match, "rules": rules}

    @property
    def has_errors(self) -> bool:
        return bool(self.error) or any(item.error for item in _all(self.root))


def _all(group: Item):
    for item in group.items:
        yield item
        if item.group:
            yield from _all(item)


def _indexes(data, prefix: str) -> list[int]:
    """The item numbers posted under a group, in order (at most MAX_RULES of them)."""
    head = prefix + "-"
    found = set()
    for key in data:
        if key.startswith(head):
            number = key[len(head) :].partition("-")[0]
            if DIGITS.fullmatch(number) and len(number) <= 3:
                found.add(int(number))
    return sorted(found)[:MAX_RULES]


def _text(data, key: str, limit: int = 300) -> str:
    return str(data.get(key, ""))[:limit]


def _read(data, prefix: str, *, depth: int) -> Item:
    group = Item(prefix, depth, group=True, match="any" if data.get(f"{prefix}-match") == "any" else "all")
    for number in _indexes(data, prefix):
        at = f"{prefix}-{number}"
        if f"{at}-match" in data:
            too_deep = Item(at, depth, error=f"Groups go at most {MAX_DEPTH} deep.")
            group.items.append(_read(data, at, depth=depth + 1) if depth < MAX_DEPTH else too_deep)
        elif f"{at}-field" in data:
            group.items.append(
                Item(
                    at,
                    depth,
                    field=_text(data, f"{at}-field", 200),
                    op=_text(data, f"{at}-op", 40),
                    value=_text(data, f"{at}-value"),
                    value2=_text(data, f"{at}-value2"),
                )
            )
    return group


def _from_tree(tree: Mapping, prefix: str, *, depth: int) -> Item:
    group = Item(prefix, depth, group=True, match=tree.get("match", "all"))
    for number, rule in enumerate(tree.get("rules", [])):
        at = f"{prefix}-{number}"
        if "rules" in rule:
            group.items.append(_from_tree(rule, at, depth=depth + 1))
        else:
            group.items.append(
                Item(
                    at,
                    depth,
                    field=rule.get("field", ""),
                    op=rule.get("op", ""),
                    value=str(rule.get("value", "")),
                    value2=str(rule.get("value2", "")),
                )
            )
    return group


def _find(group: Item, prefix: str) -> tuple[Item | None, Item | None]:
    """The item at `prefix` and the group holding it."""
    if group.prefix == prefix:
        return group, None
    for item in group.items:
        if item.prefix == prefix:
            return item, group
        if item.group and prefix.startswith(item.prefix + "-"):
            return _find(item, prefix)
    return None, None


def _apply(root: Item, action: str, prefix: str) -> None:
    item, holder = _find(root, prefix)
    if item is None or sum(1 for _ in _all(root)) >= MAX_RULES and action in {"add_rule", "add_group"}:
        return
    if action == "add_rule" and item.group:
        item.items.append(Item("", item.depth))
    elif action == "add_group" and item.can_nest:
        item.items.append(Item("", item.depth + 1, group=True, items=[Item("", item.depth + 1)]))
    elif action == "remove" and holder is not None:
        holder.items.remove(item)


def _renumber(group: Item, prefix: str) -> None:
    group.prefix = prefix
    for number, item in enumerate(group.items):
        if item.group:
            _renumber(item, f"{prefix}-{number}")
        else:
            item.prefix = f"{prefix}-{number}"
