"""Segments: the Audience's filters saved under a name (contacts.models.Segment)."""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import Team

from ..conditions import Field, conditions_clean
from ..models import Segment
from ..selectors import SUBSTRING_MIN

SEGMENTS_PER_TEAM = 200
NAME_MAX = 120


def audience_tree(*, q: str, source: str, subscribed: str, list_id: int, conditions: dict | None) -> dict:
    """Everything the Audience was filtered by, as one condition tree: the search (email or name containing it),
    the source, subscribed or not, the list, and the segment's and the builder's rules."""
    rules: list[dict] = []
    if q.strip():
        words = q.strip()[:200]
        op = "contains" if len(words) >= SUBSTRING_MIN else "starts_with"  # as the Audience searched (selectors)
        rules.append(
            {
                "match": "any",
                "rules": [{"field": f"contact.{name}", "op": op, "value": words} for name in
                          ("email", "first_name", "last_name")],
            }
        )  # fmt: skip
    if source:
        rules.append({"field": "contact.source", "op": "equals", "value": source})
    if subscribed in {"yes", "no"}:
        rules.append({"field": "contact.subscribed", "op": "is_true" if subscribed == "yes" else "is_false"})
    if list_id:
        rules.append({"field": "lists", "op": "in_list", "value": str(list_id)})
    for tree in (conditions or {}).get("rules", []):
        rules.extend(tree["rules"] if tree.get("match", "all") == "all" and "rules" in tree else [tree])
    return {"match": "all", "rules": rules}


def segment_create(*, team: Team, user, name: str, tree: dict, catalogue: dict[str, Field]) -> Segment:
    """Save a filter as a segment. Raises ValidationError saying why not (no name, taken, nothing filtered…)."""
    name = name.strip()[:NAME_MAX]
    if not name:
        raise ValidationError("Name the segment.")
    if not tree.get("rules"):
        raise ValidationError("Filter the Audience first: a segment of everyone is the Audience itself.")
    cleaned = conditions_clean(tree, catalogue)
    if Segment.objects.filter(team=team).count() >= SEGMENTS_PER_TEAM:
        raise ValidationError(f"A team has at most {SEGMENTS_PER_TEAM} segments: delete one first.")
    try:
        with transaction.atomic():
            return Segment.objects.create(
                team=team, name=name, conditions=cleaned, created_by=user if getattr(user, "pk", None) else None
            )
    except IntegrityError:
        raise ValidationError(f"Another segment is named “{name}”.") from None


def segment_delete(*, segment: Segment) -> None:
    segment.delete()
