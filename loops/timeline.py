"""The loops app's part of a contact's timeline (contacts.timeline): its events, the loop runs they started and
each step a run passed, the emails sent to it and their opens, clicks and bounces, each linked to its page; and
where its loops and transactional emails use a property (the property manager's "in use" warning), and where its
loops use a mailing list (a list's delete confirmation)."""

from django.db.models import Q
from django.urls import reverse
from django.utils.dateparse import parse_datetime

from contacts.conditions import conditions_fields, conditions_lists
from contacts.models import Contact
from contacts.timeline import Item

from .models import EmailActivity, EmailMessage, Event, Loop, LoopRun, LoopStep, TransactionalEmail

KIND_LABELS = dict(LoopStep.Kind.choices)


def contact_story(contact: Contact, limit: int) -> list[Item]:
    items: list[Item] = []
    for event in Event.objects.filter(contact=contact).order_by("-created_at", "-id")[:limit]:
        detail = " · ".join(part for part in (event.source, event.properties.get("amount_formatted", "")) if part)
        items.append(Item(event.created_at, "event", f"Event {event.name}", str(detail), _url("loops:event", event.pk)))
    runs = LoopRun.objects.filter(contact=contact).select_related("loop").order_by("-created_at")[: max(limit // 4, 10)]
    for run in runs:
        loop_url = _url("loops:loop", run.loop_id)
        items.append(Item(run.created_at, "run", f"Entered “{run.loop.name}”", run.get_status_display(), loop_url))
        for note in run.history[-limit:]:
            at = parse_datetime(str(note.get("at", "")))
            if at is None or note.get("step") is None:
                continue
            kind = KIND_LABELS.get(note.get("kind") or "", "Step")
            items.append(Item(at, "step", f"{run.loop.name}: {kind}", str(note.get("what", ""))[:200], loop_url))
    emails = EmailMessage.objects.filter(contact=contact).order_by("-created_at")[:limit]
    for email in emails.only("pk", "subject", "status", "created_at", "sent_at", "error"):
        items.append(
            Item(
                email.sent_at or email.created_at,
                "email",
                f"Email “{email.subject}”",
                email.get_status_display() + (f": {email.error[:120]}" if email.error else ""),
                _url("loops:email", email.pk),
            )
        )
    activity = EmailActivity.objects.filter(contact=contact).select_related("message").order_by("-created_at", "-id")
    for done in activity.only("kind", "url", "detail", "created_at", "message__subject")[:limit]:
        items.append(
            Item(
                done.created_at,
                done.kind,
                f"{done.get_kind_display()} “{done.message.subject}”",
                (done.url or done.detail)[:200],
                _url("loops:email", done.message_id),
            )
        )
    return items


def _url(name: str, pk: int) -> str:
    return reverse(name, args=[pk])


def property_usage(team_id: int, key: str) -> list[tuple[str, str]]:
    """Where the team's loops and transactional emails use the property `key`: in an email's Liquid
    (`contact.key` or `contact.properties.key`), a filter or branch, a trigger, an Update contact step."""
    names = [f"contact.{key}", f"contact.properties.{key}"]
    text = Q()
    for name in names:
        text |= Q(subject__contains=name) | Q(body__contains=name) | Q(preview_text__contains=name)
    uses: dict[str, str] = {}
    steps = LoopStep.objects.filter(team_id=team_id).select_related("loop")
    for step in steps.filter(text | Q(kind=LoopStep.Kind.UPDATE_CONTACT, update_property=key)):
        uses[f"Loop “{step.loop.name}”: {step.get_kind_display().lower()}"] = _url("loops:loop", step.loop_id)
    for step in steps.filter(kind__in=[LoopStep.Kind.FILTER, LoopStep.Kind.BRANCH]):
        trees = [step.conditions] + [path.get("conditions") for path in step.paths or []]
        if any(names[1] in conditions_fields(tree) for tree in trees if tree):
            uses[f"Loop “{step.loop.name}”: {step.get_kind_display().lower()}"] = _url("loops:loop", step.loop_id)
    for loop in Loop.objects.filter(team_id=team_id, trigger_field=names[1]):
        uses[f"Loop “{loop.name}”: its trigger"] = _url("loops:loop", loop.pk)
    for email in TransactionalEmail.objects.filter(team_id=team_id).filter(text):
        uses[f"Transactional email “{email.name}”"] = _url("loops:transactional", email.pk)
    return list(uses.items())


def list_usage(team_id: int, list_id: int) -> list[tuple[str, str]]:
    """Where the team's loops use the mailing list `list_id`: as the list whose joining starts the loop, in an
    Update contact step that adds to it or removes from it, in a filter's or a branch's rule."""
    uses: dict[str, str] = {}
    for loop in Loop.objects.filter(team_id=team_id, trigger=Loop.Trigger.LIST_ADDED, trigger_list_id=list_id):
        uses[f"Loop “{loop.name}”: its trigger"] = _url("loops:loop", loop.pk)
    joins = [LoopStep.Update.JOIN_LIST, LoopStep.Update.LEAVE_LIST]
    updating = Q(kind=LoopStep.Kind.UPDATE_CONTACT, update_action__in=joins, update_list_id=list_id)
    steps = LoopStep.objects.filter(team_id=team_id).select_related("loop")
    for step in steps.filter(updating | Q(kind__in=[LoopStep.Kind.FILTER, LoopStep.Kind.BRANCH])):
        trees = [step.conditions] + [path.get("conditions") for path in step.paths or []]
        if step.kind == LoopStep.Kind.UPDATE_CONTACT or any(list_id in conditions_lists(tree) for tree in trees):
            uses[f"Loop “{step.loop.name}”: {step.get_kind_display().lower()}"] = _url("loops:loop", step.loop_id)
    return list(uses.items())
