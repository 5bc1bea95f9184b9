"""Loops as JSON: `loop_export` writes a loop in the format below, `loop_import` creates a draft from it. The
seeded templates (loops/loop_templates/*.json), `manage.py loop_export`/`loop_import` and the editor's download
and upload use it. Exporting what was imported gives the same JSON, ids apart.

    {
      "format": "loopsync.loop/1",
      "name": "Stripe - Payment Failed",
      "trigger": {"type": "event", "event": "failedPayment"},
      "frequency": {"type": "per_key", "key": "invoice_id"},
      "nodes": [{"id": "n1", "type": "email", "subject": "…", "body": "…"}, …],
      "edges": [{"from": "n1", "to": "n2"}, {"from": "n3", "port": 1, "to": "n4"}]
    }

Triggers: {"type": "event", "event"}, {"type": "contact_added"}, {"type": "contact_updated", "field", "from",
"to"} (a missing "from" or "to": any value; no "field": any change), {"type": "list_added", "list": "<name>"}.
Frequency: {"type": "once"}, {"type": "every"}, {"type": "per_key", "key"}. Nodes, by "type":
- "email": subject, preview_text, body, from_name, from_email, reply_to; "tracking": false when its opens and
  clicks are not tracked;
- "timer": "delay": {"value", "unit"} (minutes, hours, days);
- "wait_event": "event", "timeout": {"value", "unit"}, "on_event" and "on_timeout" ("continue" or "stop");
- "filter": "conditions" (contacts.conditions);
- "branch": "paths": [{"name", "conditions"}] (first match wins; a last path without conditions is the
  catch-all);
- "experiment": "variants": [{"name", "percent", "control"}];
- "update_contact": "action" (set_property, clear_property, join_list, leave_list), "property", "value",
  "list" (a list's name).
The root is the node no edge leads to; an edge's "port" (default 0) is a branch's path or an experiment's
variant, by index.
"""

from typing import Any, NoReturn

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import Team
from contacts.changes import field_watchable
from contacts.conditions import conditions_clean
from contacts.models import MailingList

from ..models import Loop, LoopStep
from .graph import MAX_STEPS, tree_load
from .loops import event_name_validate
from .naming import loop_name_free
from .updating import update_step_problems

FORMAT = "loopsync.loop/1"
MAX_SPEC_BYTES = 1_000_000
EMAIL_FIELDS = ["subject", "preview_text", "body", "from_name", "from_email", "reply_to"]
UPDATE_FIELDS = {"action": "update_action", "property": "update_property", "value": "update_value"}


def _delay(step: LoopStep) -> dict[str, Any]:
    return {"value": step.delay_value, "unit": step.delay_unit}


def _node(step: LoopStep, lists: dict[int, str]) -> dict[str, Any]:
    kind = step.kind
    node: dict[str, Any] = {"type": kind}
    if kind == LoopStep.Kind.EMAIL:
        node.update({name: getattr(step, name) for name in EMAIL_FIELDS if getattr(step, name) or name == "body"})
        node.setdefault("subject", step.subject)
        if not step.tracking:
            node["tracking"] = False
    elif kind == LoopStep.Kind.TIMER:
        node["delay"] = _delay(step)
    elif kind == LoopStep.Kind.WAIT_EVENT:
        node.update(
            {
                "event": step.wait_event_name,
                "timeout": _delay(step),
                "on_event": step.on_event,
                "on_timeout": step.on_timeout,
            }
        )
    elif kind == LoopStep.Kind.FILTER:
        node["conditions"] = _lists_named(step.conditions, lists)
    elif kind == LoopStep.Kind.BRANCH:
        node["paths"] = [
            {"name": p.get("name", ""), "conditions": _lists_named(p.get("conditions"), lists) or None}
            for p in step.paths
        ]
    elif kind == LoopStep.Kind.EXPERIMENT:
        node["variants"] = [
            {"name": p.get("name", ""), "percent": p.get("percent", 0), "control": bool(p.get("control"))}
            for p in step.paths
        ]
    elif kind == LoopStep.Kind.UPDATE_CONTACT:
        node.update({key: getattr(step, field) for key, field in UPDATE_FIELDS.items() if getattr(step, field)})
        if step.update_list_id:
            node["list"] = lists.get(step.update_list_id, "")
    return node


def _lists_named(tree: Any, lists: dict[int, str]) -> Any:
    """A condition tree with its mailing lists by name, not id: the JSON works in another team that has lists of
    those names."""
    if not isinstance(tree, dict) or "rules" not in tree:
        return tree
    rules = []
    for rule in tree["rules"]:
        if "rules" in rule:
            rules.append(_lists_named(rule, lists))
        elif rule.get("field") == "lists":
            rules.append({**rule, "value": lists.get(int(rule.get("value") or 0), rule.get("value"))})
        else:
            rules.append(rule)
    return {**tree, "rules": rules}


def _lists_by_id(tree: Any, team: Team, where: str) -> Any:
    """The other way: each `lists` rule's list name made the team's list id (an id, as older files have, is
    kept and checked as one)."""
    if not isinstance(tree, dict) or not isinstance(tree.get("rules"), list):
        return tree
    rules = []
    for rule in tree["rules"][:100]:
        if isinstance(rule, dict) and "rules" in rule:
            rules.append(_lists_by_id(rule, team, where))
        elif isinstance(rule, dict) and rule.get("field") == "lists":
            name = str(rule.get("value", ""))[:120]
            found = MailingList.objects.filter(team=team, name=name).values_list("pk", flat=True).first()
            if found is None and not (name.isascii() and name.isdigit()):
                _fail(where, f"no mailing list is named “{name[:80]}” in this team")
            rules.append({**rule, "value": str(found) if found is not None else name})
        else:
            rules.append(rule)
    return {**tree, "rules": rules}


def _trigger(loop: Loop) -> dict[str, Any]:
    if loop.trigger == Loop.Trigger.EVENT:
        return {"type": "event", "event": loop.trigger_event_name}
    if loop.trigger == Loop.Trigger.CONTACT_UPDATED:
        trigger: dict[str, Any] = {"type": "contact_updated"}
        if loop.trigger_field:
            trigger["field"] = loop.trigger_field
        if loop.trigger_from_set:
            trigger["from"] = loop.trigger_from
        if loop.trigger_to_set:
            trigger["to"] = loop.trigger_to
        return trigger
    if loop.trigger == Loop.Trigger.LIST_ADDED:
        return {"type": "list_added", "list": loop.trigger_list.name if loop.trigger_list else ""}
    return {"type": loop.trigger}


def loop_export(*, loop: Loop) -> dict[str, Any]:
    """The loop as JSON (the format above). Nodes are numbered n1, n2… depth first from the root."""
    tree = tree_load(loop)
    lists = dict(MailingList.objects.filter(team_id=loop.team_id).values_list("pk", "name"))
    order = [step for step, _ in tree.walk()]
    ids = {step.id: f"n{index}" for index, step in enumerate(order, start=1)}
    nodes = [{"id": ids[step.id], **_node(step, lists)} for step in order]
    edges = []
    for step in order:
        if step.parent_id is not None and step.parent_id in ids:
            edge: dict[str, Any] = {"from": ids[step.parent_id], "to": ids[step.id]}
            if step.port:
                edge = {"from": ids[step.parent_id], "port": step.port, "to": ids[step.id]}
            edges.append(edge)
    frequency: dict[str, Any] = {"type": loop.frequency}
    if loop.frequency == Loop.Frequency.PER_KEY:
        frequency["key"] = loop.frequency_key
    return {
        "format": FORMAT,
        "name": loop.name,
        "trigger": _trigger(loop),
        "frequency": frequency,
        "nodes": nodes,
        "edges": edges,
    }


# --- importing -----------------------------------------------------------------------------------


class SpecError(ValidationError):
    """What is wrong with a loop's JSON, with where (`nodes[2].subject: …`)."""


def _fail(where: str, message: str) -> NoReturn:
    raise SpecError(f"{where}: {message}" if where else message)


def _text(value: Any, where: str, *, limit: int = 255, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        _fail(where, "must be text")
    if required and not value.strip():
        _fail(where, "is required")
    if len(value) > limit:
        _fail(where, f"is at most {limit:,} characters")
    return value


def _int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        _fail(where, "must be a whole number")
    return value


def _event_name(value: Any, where: str) -> str:
    """An event name as the editor takes it (loops.event_name_validate)."""
    try:
        return event_name_validate(_text(value, where, limit=120))
    except SpecError:
        raise
    except ValidationError as exc:
        _fail(where, " ".join(exc.messages))


def _list_named(team: Team, name: Any, where: str) -> MailingList:
    mailing_list = MailingList.objects.filter(team=team, name=_text(name, where, required=True)).first()
    if mailing_list is None:
        _fail(where, f"no mailing list is named “{str(name)[:80]}” in this team")
    return mailing_list


def _loop_fields(team: Team, spec: dict) -> dict[str, Any]:
    trigger = spec.get("trigger") or {}
    if not isinstance(trigger, dict):
        _fail("trigger", "must be an object")
    kind = trigger.get("type")
    fields: dict[str, Any] = {"trigger": kind}
    if kind == Loop.Trigger.EVENT:
        fields["trigger_event_name"] = _event_name(trigger.get("event"), "trigger.event")
    elif kind == Loop.Trigger.CONTACT_UPDATED:
        fields["trigger_field"] = _text(trigger.get("field"), "trigger.field", limit=120)
        for end in ("from", "to"):
            if end in trigger:
                fields[f"trigger_{end}"] = _text(trigger[end], f"trigger.{end}")
                fields[f"trigger_{end}_set"] = True
    elif kind == Loop.Trigger.LIST_ADDED:
        fields["trigger_list"] = _list_named(team, trigger.get("list"), "trigger.list")
    elif kind != Loop.Trigger.CONTACT_ADDED:
        _fail("trigger.type", f"one of {', '.join(Loop.Trigger.values)}")
    frequency = spec.get("frequency") or {"type": Loop.Frequency.EVERY}
    if not isinstance(frequency, dict) or frequency.get("type") not in Loop.Frequency.values:
        _fail("frequency.type", f"one of {', '.join(Loop.Frequency.values)}")
    fields["frequency"] = frequency["type"]
    if frequency["type"] == Loop.Frequency.PER_KEY:
        fields["frequency_key"] = _text(frequency.get("key"), "frequency.key", limit=64, required=True)
    return fields


def _delay_fields(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        _fail(where, 'must be {"value": N, "unit": "days"}')
    unit = value.get("unit", "days")
    if unit not in LoopStep.Unit.values:
        _fail(f"{where}.unit", "minutes, hours or days")
    return {"delay_value": _int(value.get("value"), f"{where}.value"), "delay_unit": unit}


def _step(team: Team, node: dict, where: str, catalogue) -> LoopStep:
    kind = node.get("type")
    if kind not in LoopStep.Kind.values:
        _fail(f"{where}.type", f"one of {', '.join(LoopStep.Kind.values)}")
    step = LoopStep(team=team, kind=str(kind))
    if kind == LoopStep.Kind.EMAIL:
        for name in EMAIL_FIELDS:
            limit = getattr(LoopStep._meta.get_field(name), "max_length", None) or 200_000  # the column's: no DataError
            setattr(step, name, _text(node.get(name), f"{where}.{name}", limit=limit))
        tracking = node.get("tracking", True)
        if not isinstance(tracking, bool):
            _fail(f"{where}.tracking", "true or false")
        step.tracking = tracking
    elif kind == LoopStep.Kind.TIMER:
        for name, value in _delay_fields(node.get("delay"), f"{where}.delay").items():
            setattr(step, name, value)
    elif kind == LoopStep.Kind.WAIT_EVENT:
        step.wait_event_name = _event_name(node.get("event"), f"{where}.event")
        for name, value in _delay_fields(node.get("timeout"), f"{where}.timeout").items():
            setattr(step, name, value)
        for name in ("on_event", "on_timeout"):
            then = node.get(name, LoopStep.Then.CONTINUE if name == "on_event" else LoopStep.Then.STOP)
            if then not in LoopStep.Then.values:
                _fail(f"{where}.{name}", "continue or stop")
            setattr(step, name, then)
    elif kind == LoopStep.Kind.FILTER:
        tree = _lists_by_id(node.get("conditions"), team, f"{where}.conditions")
        step.conditions = _conditions(tree, f"{where}.conditions", catalogue)
    elif kind == LoopStep.Kind.BRANCH:
        paths = node.get("paths")
        if not isinstance(paths, list):
            _fail(f"{where}.paths", "must be a list")
        step.paths = [
            {
                "name": _text(path.get("name"), f"{where}.paths[{i}].name", limit=80),
                "conditions": _conditions(
                    _lists_by_id(path.get("conditions"), team, f"{where}.paths[{i}].conditions"),
                    f"{where}.paths[{i}].conditions",
                    catalogue,
                ),
            }
            for i, path in enumerate(_objects(paths, f"{where}.paths"))
        ]
    elif kind == LoopStep.Kind.EXPERIMENT:
        variants = node.get("variants")
        if not isinstance(variants, list):
            _fail(f"{where}.variants", "must be a list")
        step.paths = [
            {
                "name": _text(variant.get("name"), f"{where}.variants[{i}].name", limit=80),
                "percent": _int(variant.get("percent"), f"{where}.variants[{i}].percent"),
                "control": bool(variant.get("control")),
            }
            for i, variant in enumerate(_objects(variants, f"{where}.variants"))
        ]
    elif kind == LoopStep.Kind.UPDATE_CONTACT:
        for key, field in UPDATE_FIELDS.items():
            setattr(step, field, _text(node.get(key), f"{where}.{key}", limit=255 if key == "value" else 64))
        if node.get("list") not in (None, ""):
            step.update_list = _list_named(team, node.get("list"), f"{where}.list")
        for field, problem in update_step_problems(step=step).items():
            _fail(f"{where}.{next(k for k, f in UPDATE_FIELDS.items() if f == field)}", problem)
    return step


def _objects(items: list, where: str) -> list[dict]:
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            _fail(f"{where}[{index}]", "must be an object")
    return items


def _conditions(tree: Any, where: str, catalogue) -> dict:
    if catalogue is None:  # a seeded template: checked when a team copies it
        return tree or {}
    try:
        return conditions_clean(tree, catalogue)
    except ValidationError as exc:
        _fail(where, " ".join(exc.messages))
        raise


def spec_check(spec: Any) -> None:
    if not isinstance(spec, dict):
        _fail("", "A loop is a JSON object.")
    if spec.get("format", FORMAT) != FORMAT:
        _fail("format", f"this is {FORMAT}; got {str(spec.get('format'))[:40]!r}")
    for key in ("nodes", "edges"):
        if not isinstance(spec.get(key, []), list):
            _fail(key, "must be a list")
    if len(spec.get("nodes", [])) > MAX_STEPS:
        _fail("nodes", f"a loop has at most {MAX_STEPS} steps")


@transaction.atomic
def loop_import(
    *, team: Team, spec: Any, name: str = "", template_slug: str = "", catalogue: Any = None, check_fields: bool = True
) -> Loop:
    """A new draft loop of `team` from JSON (the format above): its trigger, frequency and tree of steps. The name
    is the JSON's (or `name`), made unique in the team ("… (2)"). Raises SpecError naming what is wrong; nothing is
    saved then. Conditions are checked against `catalogue` (loops.selectors.condition_fields), unless
    `check_fields` is off."""
    spec_check(spec)
    wanted = _text(name or spec.get("name"), "name", limit=120, required=True).strip()
    loop = Loop(
        team=team, name=loop_name_free(team=team, name=wanted), template_slug=template_slug, **_loop_fields(team, spec)
    )
    try:
        with transaction.atomic():
            loop.save()
    except IntegrityError:
        _fail("name", "a loop with this name was created meanwhile; try again")
    if check_fields and catalogue is None:
        from ..selectors import condition_fields

        catalogue = condition_fields(loop=loop)
    if loop.trigger_field and not field_watchable(loop.trigger_field):
        _fail("trigger.field", f"unknown field “{loop.trigger_field[:80]}”: e.g. contact.first_name")
    nodes = _objects(spec.get("nodes", []), "nodes")
    steps: dict[str, LoopStep] = {}
    for index, node in enumerate(nodes):
        node_id = _text(node.get("id"), f"nodes[{index}].id", limit=64, required=True)
        if node_id in steps:
            _fail(f"nodes[{index}].id", f"“{node_id}” is used twice")
        step = _step(team, node, f"nodes[{index}]", catalogue if check_fields else None)
        step.loop = loop
        try:
            step.clean()
        except ValidationError as exc:
            _fail(f"nodes[{index}] ({step.get_kind_display()})", " ".join(exc.messages))
        steps[node_id] = step
    parents: dict[str, tuple[str, int]] = {}
    taken: set[tuple[str, int]] = set()
    for index, edge in enumerate(_objects(spec.get("edges", []), "edges")):
        where = f"edges[{index}]"
        source, target = str(edge.get("from")), str(edge.get("to"))
        port = edge.get("port", 0)
        if source not in steps or target not in steps:
            _fail(where, "“from” and “to” name nodes")
        if not isinstance(port, int) or not 0 <= port < max(steps[source].ports, 1):
            _fail(f"{where}.port", f"{source} has {max(steps[source].ports, 1)} port(s)")
        if target in parents:
            _fail(where, f"{target} already has a step before it: a loop is a tree")
        if (source, port) in taken:
            _fail(where, f"{source} port {port} already leads somewhere")
        parents[target] = (source, port)
        taken.add((source, port))
    roots = [node_id for node_id in steps if node_id not in parents]
    if steps and len(roots) != 1:
        _fail("edges", "exactly one node has no edge leading to it (the start)")
    saved: set[str] = set()

    def save(node_id: str, trail: tuple[str, ...] = ()) -> None:
        if node_id in saved:
            return
        if node_id in trail:
            _fail("edges", f"a cycle through {node_id}")
        parent = parents.get(node_id)
        if parent is not None:
            save(parent[0], (*trail, node_id))
            steps[node_id].parent, steps[node_id].port = steps[parent[0]], parent[1]
        steps[node_id].save()
        saved.add(node_id)

    for node_id in steps:
        save(node_id)
    return loop


def loop_duplicate(*, loop: Loop) -> Loop:
    """A draft copy of the loop, named "… (copy)" (made unique), with no runs."""
    return loop_import(
        team=loop.team,
        spec=loop_export(loop=loop),
        name=f"{loop.name} (copy)",
        template_slug=loop.template_slug,
        check_fields=False,
    )
