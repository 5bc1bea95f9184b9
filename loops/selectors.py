import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import TruncDate

from accounts.models import Team
from contacts.conditions import Field, fields_for, value_type
from contacts.models import Contact, MailingList
from contacts.selectors import team_properties
from loopsync.budget import within_budget

from .models import (
    PASSED_BEHIND,
    EmailActivity,
    EmailMessage,
    Event,
    Loop,
    LoopRun,
    LoopStep,
    TransactionalEmail,
    step_key,
)
from .rendering import SAMPLE_CONTEXT, RenderError, contact_context, email_render, event_context
from .services.graph import Tree, branching
from .triggers import trigger_properties

PAGE_SIZE = 50


def events_for_team(*, team: Team, name: str = "", contact: str = "", livemode: bool = True) -> QuerySet[Event]:
    """The team's events of one mode (live, or test behind the "Test data" switch), newest first."""
    events = Event.objects.filter(team=team, livemode=livemode).select_related("contact")
    events = events.order_by("-created_at", "-id")
    # A NUL can be in no PostgreSQL text column, and psycopg refuses it in a parameter (a 500): drop it.
    name, contact = name.replace("\x00", ""), contact.replace("\x00", "")
    if name:
        events = events.filter(name=name)
    if contact:
        events = events.filter(contact__email__icontains=contact.strip())
    return events


def event_names(*, team: Team, livemode: bool = True) -> list[str]:
    events = Event.objects.filter(team=team, livemode=livemode)
    return list(events.order_by("name").values_list("name", flat=True).distinct()[:200])


def preview_context(*, loop: Loop, contact: Contact | None) -> dict[str, Any]:
    """What the editor renders an email with: the chosen contact (or a sample one) and the event that
    would start the run: the contact's latest with the loop's trigger name, else the team's latest,
    else a sample."""
    event = None
    if loop.trigger == Loop.Trigger.EVENT and loop.trigger_event_name:
        livemode = contact.livemode if contact else True  # a test contact's events are test events
        named = Event.objects.filter(team_id=loop.team_id, name=loop.trigger_event_name, livemode=livemode)
        named = named.order_by("-created_at", "-id")
        event = (named.filter(contact=contact).first() if contact else None) or named.first()
    return {
        "contact": contact_context(contact) if contact else SAMPLE_CONTEXT["contact"],
        "event": event_context(event) if event else SAMPLE_CONTEXT["event"],
    }


def preview_contacts(*, team: Team, limit: int = 20) -> list[str]:
    """Emails to offer in the preview's contact picker: the newest contacts."""
    newest = Contact.objects.live().filter(team=team).order_by("-created_at", "-id")
    return list(newest.values_list("email", flat=True)[:limit])


EVENT_SAMPLES = 50  # recent events of a name whose property keys the filter builder offers


def event_property_types(*, team_id: int, name: str) -> dict[str, str]:
    """The property keys of the team's recent events with this name, and the type their values suggest; with
    what other apps know their events carry (loops.triggers: a Stripe type's properties)."""
    types: dict[str, str] = dict(trigger_properties(name=name))
    if not name:
        return types
    recent = Event.objects.filter(team_id=team_id, name=name).order_by("-created_at", "-id")[:EVENT_SAMPLES]
    for properties in recent.values_list("properties", flat=True):
        for key, value in (properties or {}).items():
            if isinstance(key, str) and len(key) <= 64 and key not in types:
                types[key] = value_type(value)
    return types


def condition_fields(*, loop: Loop) -> dict[str, Field]:
    """What the loop's filters and branches may name: the contact's fields, the built-in billing properties and
    the team's declared ones, the mailing lists, and (for an event trigger) the event's properties."""
    declared = team_properties(team_id=loop.team_id)
    events = (
        event_property_types(team_id=loop.team_id, name=loop.trigger_event_name)
        if loop.trigger == Loop.Trigger.EVENT
        else {}
    )
    lists = dict(MailingList.objects.filter(team_id=loop.team_id).values_list("pk", "name"))
    return fields_for(properties=declared, event_properties=events, lists=lists)


def loop_outline(*, loop: Loop) -> list[dict[str, Any]]:
    """The loop's tree as the editor draws it, top to bottom: each step with its depth (in branches), its number,
    whether it can move up or down, and its counts (entered, here now, passed on); a heading for each path of a
    branch or variant of an experiment; and a place to add a step at the end of each chain."""
    tree = Tree(LoopStep.objects.filter(loop=loop))
    counts = _step_counts(loop, tree)
    summaries = _email_summaries(loop, tree)
    figures = step_figures(loop=loop)
    rows: list[dict[str, Any]] = []
    number = 0

    def chain(step: LoopStep | None, depth: int) -> None:
        nonlocal number
        while step is not None:
            number += 1
            above = tree.steps.get(step.parent_id) if step.parent_id else None
            below = tree.child(step, 0)
            splits = branching(step)
            rows.append(
                {
                    "type": "step",
                    "step": step,
                    "depth": depth,
                    "number": number,
                    "can_up": above is not None and not splits and not branching(above),
                    "can_down": below is not None and not splits and not branching(below),
                    "counts": counts.get(step.id, {}),
                    "rendered": summaries.get(step.id),
                    "emails": figures.get(step.id) if figures is not None else {"too_slow": FIGURES_BUDGET_MS},
                }
            )
            if splits:
                taken = _ports_taken(loop, step)
                for index, path in enumerate(step.paths):
                    rows.append(
                        {
                            "type": "path",
                            "depth": depth + 1,
                            "step": step,
                            "port": index,
                            "path": path,
                            "taken": taken.get(index, {}),
                        }
                    )
                    label = (
                        f"Add a step at the start of {'variant' if step.kind == 'experiment' else 'path'} {index + 1}"
                    )
                    rows.append({"type": "add", "depth": depth + 1, "after": step, "port": index, "label": label})
                    chain(tree.child(step, index), depth + 1)
                return
            rows.append(
                {"type": "add", "depth": depth, "after": step, "port": 0, "label": f"Add a step after step {number}"}
            )
            step = below

    rows.append(
        {"type": "add", "depth": 0, "after": None, "port": 0, "start": True, "label": "Add a step at the start"}
    )
    chain(tree.root, 0)
    return rows


SUMMARY_BUDGET_SECONDS = 1.0  # rendering the page's email summaries; the rest show their source
SUMMARY_TEXT = 240


def _email_summaries(loop: Loop, tree) -> dict[int, dict[str, str]]:
    """Each email step as the sample contact (with the loop's latest triggering event) would get it: its subject
    and the start of its text, or the reason it cannot render. Within SUMMARY_BUDGET_SECONDS for the page (each
    render within its own limits too); the steps past it show their source instead."""
    context = {**preview_context(loop=loop, contact=None), "unsubscribe_url": "#"}
    deadline = time.monotonic() + SUMMARY_BUDGET_SECONDS
    summaries: dict[int, dict[str, str]] = {}
    for step, _ in tree.walk():
        if step.kind != LoopStep.Kind.EMAIL:
            continue
        if time.monotonic() > deadline:
            break
        try:
            rendered = email_render(
                subject=step.subject, preview_text=step.preview_text, body=step.body, context=context
            )
        except RenderError as exc:
            summaries[step.id] = {"error": str(exc)}
            continue
        text = " ".join(rendered.text.split())
        cut = text[:SUMMARY_TEXT] + ("…" if len(text) > SUMMARY_TEXT else "")
        summaries[step.id] = {"subject": rendered.subject, "preview": rendered.preview_text, "text": cut}
    return summaries


def _ports_taken(loop: Loop, step: LoopStep) -> dict[int, dict[str, int]]:
    """Per path of a branch (variant of an experiment): the runs that took it, and how many of them completed
    the loop. One query."""
    key = step_key(step.id)
    aggregates = {}
    for port in range(len(step.paths)):
        took = Q(**{f"choices__{key}": port})
        aggregates[f"took{port}"] = Count("id", filter=took)
        aggregates[f"done{port}"] = Count("id", filter=took & Q(status=LoopRun.Status.COMPLETED))
    counts = LoopRun.objects.filter(loop=loop).aggregate(**aggregates) if aggregates else {}
    return {
        port: {"runs": counts[f"took{port}"] or 0, "completed": counts[f"done{port}"] or 0}
        for port in range(len(step.paths))
    }


ENDED_AT_A_STEP = [LoopRun.Status.FILTERED_OUT, LoopRun.Status.STOPPED, LoopRun.Status.FAILED]


def _done(key: str) -> Q:
    """Runs that did the step (not those it was added behind: PASSED_BEHIND)."""
    return Q(passed__has_key=key) & ~Q(**{f"passed__{key}": PASSED_BEHIND})


def _step_counts(loop: Loop, tree) -> dict[int, dict[str, int]]:
    """Per step: runs here now (waiting in it or due to do it), runs that went on past it, and runs that ended at
    it (filtered out, stopped, failed). One query for each."""
    here = (
        LoopRun.objects.filter(loop=loop, status__in=[LoopRun.Status.ACTIVE, LoopRun.Status.WAITING])
        .values("step_id")
        .annotate(n=Count("id"))
    )
    counts: dict[int, dict[str, int]] = {step_id: {"here": 0, "passed": 0, "ended": 0} for step_id in tree.steps}
    for row in here:
        if row["step_id"] in counts:
            counts[row["step_id"]]["here"] = row["n"]
    ended = (
        LoopRun.objects.filter(loop=loop, status__in=ENDED_AT_A_STEP, step__isnull=False)
        .values("step_id")
        .annotate(n=Count("id"))
    )
    for row in ended:
        if row["step_id"] in counts:
            counts[row["step_id"]]["ended"] = row["n"]
    if tree.steps:
        passed = LoopRun.objects.filter(loop=loop).aggregate(
            **{f"s{step_id}": Count("id", filter=_done(step_key(step_id))) for step_id in tree.steps}
        )
        for step_id in tree.steps:
            counts[step_id]["passed"] = passed[f"s{step_id}"] or 0
    for value in counts.values():
        value["entered"] = value["here"] + value["passed"] + value["ended"]
    return counts


# --- the event catalogue -----------------------------------------------------------------------------

RANGE_DAYS_MAX = 366


def event_catalogue(*, team: Team, livemode: bool, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Each event name the team received in [since, until): how many, when last, and the property keys of the
    latest one (at most 200 names, the most frequent first)."""
    events = Event.objects.filter(team=team, livemode=livemode, created_at__gte=since, created_at__lt=until)
    latest = Event.objects.filter(team=team, livemode=livemode, name=OuterRef("name")).order_by("-created_at", "-id")
    rows = (
        events.values("name")
        .annotate(count=Count("id"), last_seen=Max("created_at"), sample=Subquery(latest.values("properties")[:1]))
        .order_by("-count", "name")[:200]
    )
    return [{**row, "keys": sorted(key for key in (row["sample"] or {}) if isinstance(key, str))[:30]} for row in rows]


def event_volume(*, team: Team, livemode: bool, name: str, since: datetime, until: datetime) -> list[tuple[date, int]]:
    """Events per day in [since, until) (of one name, or all), every day listed, zeros too."""
    events = Event.objects.filter(team=team, livemode=livemode, created_at__gte=since, created_at__lt=until)
    if name:
        events = events.filter(name=name.replace("\x00", ""))
    per_day = dict(
        events.annotate(day=TruncDate("created_at")).values("day").annotate(n=Count("id")).values_list("day", "n")
    )
    days = (until.date() - since.date()).days
    return [(since.date() + timedelta(days=i), per_day.get(since.date() + timedelta(days=i), 0)) for i in range(days)]


# --- what became of sent emails: opens, clicks, bounces -------------------------------------------------


def _rate(part: int, whole: int) -> str:
    return f"{part * 100 / whole:.1f}%" if whole else "–"


FIGURES_BUDGET_MS = 1_000  # an email's or a step's figures over all its sends; past it the page says so


def _figure_counts() -> dict[str, Count]:
    sent = Q(status=EmailMessage.Status.SENT)
    return {
        "sent": Count("id", filter=sent),
        "tracked": Count("id", filter=sent & Q(tracking_token__isnull=False)),
        "opened": Count("id", filter=Q(opened_at__isnull=False)),
        "clicked": Count("id", filter=Q(clicked_at__isnull=False)),
        "bounced": Count("id", filter=Q(bounced_at__isnull=False)),
        "complained": Count("id", filter=Q(complained_at__isnull=False)),
    }


def _with_rates(figures: dict[str, Any]) -> dict[str, Any]:
    return {
        **figures,
        "open_rate": _rate(figures["opened"], figures["tracked"]),
        "click_rate": _rate(figures["clicked"], figures["tracked"]),
        "bounce_rate": _rate(figures["bounced"], figures["sent"]),
    }


def _live(emails: QuerySet[Any]) -> QuerySet[Any]:
    """Without test-mode contacts' emails (to the team's own members), as on the dashboard; emails to an address
    that is no contact (transactional) stay."""
    return emails.exclude(contact__livemode=False)


def transactional_figures(*, transactional: TransactionalEmail) -> dict[str, Any]:
    return email_figures(_live(transactional.messages.all()))


def email_figures(messages: QuerySet[EmailMessage]) -> dict[str, Any]:
    """Sent, opened, clicked, bounced and complained of these emails, and the open and click rates over the sent
    emails that were tracked (an email sent without the pixel cannot be opened as far as anyone knows)."""
    figures = within_budget(lambda: messages.aggregate(**_figure_counts()), milliseconds=FIGURES_BUDGET_MS)
    return _with_rates(figures) if figures is not None else {"too_slow": FIGURES_BUDGET_MS}


def step_figures(*, loop: Loop) -> dict[int, dict[str, Any]] | None:
    """email_figures for each email step of `loop`, by step id, in one query; None past FIGURES_BUDGET_MS."""
    query = _live(EmailMessage.objects.filter(step__loop=loop)).values("step_id").annotate(**_figure_counts())
    rows = within_budget(lambda: list(query), milliseconds=FIGURES_BUDGET_MS)
    if rows is None:
        return None
    figures: dict[int, dict[str, Any]] = {}
    for row in rows:
        counts: dict[str, Any] = dict(row)
        figures[counts.pop("step_id")] = _with_rates(counts)
    return figures


def email_link_clicks(*, message: EmailMessage) -> list[dict[str, Any]]:
    """Each link of this email that was clicked, with its clicks (as recorded: up to ACTIVITY_PER_EMAIL rows)."""
    clicks = EmailActivity.objects.filter(message=message, kind=EmailActivity.Kind.CLICK)
    rows = clicks.values("url").annotate(clicks=Count("id"), last=Max("created_at")).order_by("-clicks", "url")
    return [dict(row) for row in rows]


def email_activity(*, message: EmailMessage, limit: int = 50) -> list[EmailActivity]:
    return list(EmailActivity.objects.filter(message=message).order_by("-created_at", "-id")[:limit])


TRACKING_SERIES = ("sent", "opened", "clicked", "bounced")


@dataclass(frozen=True)
class TrackingSeries:
    days: dict[str, list[tuple[date, int]]]  # per series, every day of the range, zeros too
    totals: dict[str, int]  # per series, each email counted once over the whole range


# What each series counts in EmailActivity: an email opened (a click is an open too, as on the email's figures:
# its images may be off), clicked, hard-bounced (a rejection of a dead address is recorded as a bounce).
SERIES_KINDS = {
    "opened": [EmailActivity.Kind.OPEN, EmailActivity.Kind.CLICK],
    "clicked": [EmailActivity.Kind.CLICK],
    "bounced": [EmailActivity.Kind.BOUNCE],
}


def tracking_series(*, team: Team, since: datetime, until: datetime) -> TrackingSeries:
    """Emails sent, opened, clicked and bounced in [since, until): per day (an email once a day in each series)
    and in all (an email once). Live contacts' emails and transactional ones; test-mode contacts' are left out,
    as on the rest of the dashboard. Five queries, each on an index that starts with the team."""
    sent = _live(EmailMessage.objects.filter(team=team, sent_at__gte=since, sent_at__lt=until))
    per_day: dict[str, dict[date, int]] = {
        "sent": dict(
            sent.annotate(day=TruncDate("sent_at")).values("day").annotate(n=Count("id")).values_list("day", "n")
        )
    }
    activity = _live(EmailActivity.objects.filter(team=team, created_at__gte=since, created_at__lt=until))
    for series, kinds in SERIES_KINDS.items():
        rows = activity.filter(kind__in=kinds).annotate(day=TruncDate("created_at")).values("day")
        per_day[series] = dict(rows.annotate(n=Count("message", distinct=True)).values_list("day", "n"))
    totals = activity.aggregate(
        **{series: Count("message", distinct=True, filter=Q(kind__in=kinds)) for series, kinds in SERIES_KINDS.items()}
    )
    totals["sent"] = sum(per_day["sent"].values())
    days = [since.date() + timedelta(days=i) for i in range((until.date() - since.date()).days)]
    return TrackingSeries(
        days={series: [(day, per_day[series].get(day, 0)) for day in days] for series in TRACKING_SERIES},
        totals={series: totals[series] for series in TRACKING_SERIES},
    )
