from datetime import UTC, date, datetime, time, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from accounts.selectors import team_object_or_404
from contacts.models import SUPPRESSED_BY_PROVIDER, ListMembership, MailingList
from contacts.services import ResubscribeRefused
from loopsync.csp import email_preview_policy
from loopsync.keyset import cursors, newest_first_page
from loopsync.testdata import test_data_requested

from . import selectors, services
from .models import EmailMessage, Event, Loop, LoopTemplate
from .services.unsubscribing import (
    TEST_EMAIL_LINK,
    contact_preferences_save,
    contact_resubscribe,
    contact_unsubscribe,
    unsubscribe_contact_for,
)
from .tracking import html_for_viewing


@csrf_exempt  # the signed token is the authority; mail clients' one-click POST carries no CSRF token
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET asks to confirm (link scanners must not unsubscribe anyone); POST unsubscribes, which is
    also what `List-Unsubscribe-Post: List-Unsubscribe=One-Click` sends."""
    if token == TEST_EMAIL_LINK:  # the link in a "Send a test to me" email
        return render(request, "loops/unsubscribe.html", {"test_email": True})
    contact = unsubscribe_contact_for(token)
    if contact is None:
        return render(request, "loops/unsubscribe.html", {"invalid": True}, status=404)
    # The team's own page: its name, and its public lists as preferences (what the list form promises)
    public_lists = list(MailingList.objects.filter(team_id=contact.team_id, is_public=True).order_by("name"))
    page = {
        "email": contact.email,
        "team_name": contact.team.name,
        "public_lists": public_lists,
        "suppressed": contact.unsubscribed_by in SUPPRESSED_BY_PROVIDER,
    }
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "resubscribe":  # the contact's own choice, on this page (the undo)
            try:
                contact_resubscribe(contact=contact)
            except ResubscribeRefused:  # a bounce or a complaint: not lifted from a link
                return render(request, "loops/unsubscribe.html", {**page, "subscribed": False})
            return render(request, "loops/unsubscribe.html", {**page, "resubscribed": True})
        if action == "lists":
            contact_preferences_save(contact=contact, public_lists=public_lists, chosen=request.POST.getlist("lists"))
            return render(
                request, "loops/unsubscribe.html", {**page, **_membership(contact, public_lists), "saved": True}
            )
        contact_unsubscribe(contact=contact)
        return render(request, "loops/unsubscribe.html", {**page, "done": True})
    if request.method != "GET":
        return HttpResponse(status=405)
    context = {**page, "subscribed": contact.subscribed, **_membership(contact, public_lists)}
    return render(request, "loops/unsubscribe.html", context)


def _membership(contact, public_lists) -> dict:
    ids = [mailing_list.pk for mailing_list in public_lists]
    member_of = set(
        ListMembership.objects.filter(contact=contact, mailing_list_id__in=ids).values_list(
            "mailing_list_id", flat=True
        )
    )
    return {"member_of": member_of, "subscribed": contact.subscribed}


@login_required
def event_list(request: HttpRequest) -> HttpResponse:
    team = request.team or None
    name, contact = request.GET.get("name", "")[:120], request.GET.get("contact", "")[:254]
    livemode = not test_data_requested(request)
    events = (
        selectors.events_for_team(team=team, name=name, contact=contact, livemode=livemode)
        if team
        else Event.objects.none()
    )
    page = newest_first_page(events, field="created_at", size=selectors.PAGE_SIZE, **cursors(request))
    names = selectors.event_names(team=team, livemode=livemode) if team else []
    context = {"page": page, "names": names, "name": name, "contact": contact, "test_data": not livemode}
    return render(request, "loops/events.html", context)


def date_range(request: HttpRequest) -> tuple[datetime, datetime, str]:
    """[since, until) from `?from=YYYY-MM-DD&to=YYYY-MM-DD` (both days included), the last 30 days by default, at
    most RANGE_DAYS_MAX days; and a message when what was asked could not be used."""
    today = timezone.now().date()
    first, last = parse_day(request.GET.get("from", "")), parse_day(request.GET.get("to", ""))
    problem = ""
    if (request.GET.get("from") and first is None) or (request.GET.get("to") and last is None):
        problem = "A date is YYYY-MM-DD: the last 30 days are shown."
        first = last = None
    last = last or today
    first = first or last - timedelta(days=29)
    if first > last:
        first, last = last, first
    if (last - first).days >= selectors.RANGE_DAYS_MAX:
        first = last - timedelta(days=selectors.RANGE_DAYS_MAX - 1)
        problem = f"A range is at most {selectors.RANGE_DAYS_MAX} days: it starts on {first.isoformat()}."
    since = datetime.combine(first, time.min, tzinfo=UTC)
    return since, datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC), problem


def parse_day(value: str) -> date | None:
    try:
        return date.fromisoformat(value[:10]) if value else None
    except ValueError:
        return None


CHART_HEIGHT = 100


@login_required
def event_catalogue(request: HttpRequest) -> HttpResponse:
    """Each event name with its count, when it was last seen and its property keys, over a date range, and a
    chart of the volume per day (server-rendered SVG), of one name or all."""
    team = request.team
    livemode = not test_data_requested(request)
    since, until, problem = date_range(request)
    name = request.GET.get("name", "")[:120]
    volume = selectors.event_volume(team=team, livemode=livemode, name=name, since=since, until=until)
    top = max((n for _, n in volume), default=0) or 1
    width = max(1, 600 // max(len(volume), 1))
    bars = [
        {
            "x": i * width,
            "y": CHART_HEIGHT - round(n * CHART_HEIGHT / top),
            "h": round(n * CHART_HEIGHT / top),
            "day": day,
            "n": n,
            "w": max(width - 1, 1),
        }  # fmt: skip
        for i, (day, n) in enumerate(volume)
    ]
    context = {
        "catalogue": selectors.event_catalogue(team=team, livemode=livemode, since=since, until=until),
        "bars": bars,
        "chart_width": width * len(volume),
        "chart_height": CHART_HEIGHT,
        "total": sum(n for _, n in volume),
        "name": name,
        "first": since.date(),
        "last": (until - timedelta(days=1)).date(),
        "problem": problem,
        "test_data": not livemode,
    }
    return render(request, "loops/event_catalogue.html", context)


@login_required
def event_detail(request: HttpRequest, pk: int) -> HttpResponse:
    event = team_object_or_404(Event.objects.select_related("contact"), request.team, pk=pk)
    runs = event.runs.select_related("loop").order_by("id")
    return render(request, "loops/event.html", {"event": event, "runs": runs})


@login_required
@email_preview_policy  # the email in its sandboxed frame, styled as mail clients show it
def email_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """An email exactly as it was sent: its rendered subject, HTML and text, stored when it was queued."""
    email = team_object_or_404(
        EmailMessage.objects.select_related("contact", "run__loop", "run__event", "step", "transactional"),
        request.team,
        pk=pk,
    )
    context = {
        "email": email,
        "viewed_html": html_for_viewing(email.html_body),
        "links": selectors.email_link_clicks(message=email),
        "activity": selectors.email_activity(message=email),
    }
    return render(request, "loops/email_sent.html", context)


@login_required
def loop_list(request: HttpRequest) -> HttpResponse:
    loops = (
        Loop.objects.filter(team=request.team or None)
        .select_related("trigger_list")
        .annotate(emails_sent=Count("runs__emails", filter=Q(runs__emails__status=EmailMessage.Status.SENT)))
        .order_by("name", "id")
    )
    return render(request, "loops/loops.html", {"loops": loops})


@login_required
def loop_new(request: HttpRequest) -> HttpResponse:
    """The template gallery: pick one (or a blank loop), get a draft loop to edit and activate."""
    if request.method == "POST" and request.team and request.POST.get("blank"):
        loop = services.loop_create_blank(team=request.team)
        messages.success(request, f"“{loop.name}” was created as a draft: name it, choose its trigger, add steps.")
        return redirect("loops:loop", pk=loop.pk)
    if request.method == "POST" and request.team:
        template = get_object_or_404(LoopTemplate, slug=request.POST.get("template", ""))
        loop = services.loop_create_from_template(team=request.team, template=template)
        messages.success(request, f"“{loop.name}” was created as a draft. Review it, then activate it.")
        return redirect("loops:loop", pk=loop.pk)
    return render(request, "loops/gallery.html", {"templates": LoopTemplate.objects.all()})
