from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from accounts.selectors import team_object_or_404
from loopsync.testdata import test_data_requested

from . import selectors, services
from .conditions import conditions_describe, conditions_lists
from .forms import ContactForm
from .models import Contact, MailingList, Segment
from .timeline import contact_timeline


@login_required
@vary_on_headers("HX-Request")  # one URL, two bodies (the page, or htmx's rows): caches must keep them apart
def contact_list(request: HttpRequest) -> HttpResponse:
    team = request.team or None
    cursor = request.GET.get("after", "")
    # ?list=<id>, ?segment=<id>: one of the team's; an id that is not one of them matches no contact.
    mailing_lists = list(MailingList.objects.filter(team=team)) if team else []
    query = selectors.audience_filter(team=team, params=request.GET, livemode=not test_data_requested(request))
    filters = query.filters
    if not query.can_match:
        page = selectors.Page(contacts=[], next_cursor="")
    else:
        page = selectors.audience_page(team=team, filters=filters, cursor=cursor)
    filtered = query.filtered
    counts = selectors.audience_counts(team=team, filters=filters, filtered=filtered and query.can_match)
    list_id = request.GET.get("list", "")[:20]
    properties = selectors.team_properties(team_id=team.pk)
    columns = _columns(request, team, {key for key, _, _ in properties})
    labels = {key: label for key, label, _ in properties}
    for contact in page.contacts:
        contact.columns = [_cell(contact.properties.get(key)) for key in columns]  # type: ignore[attr-defined]
    context = {
        "columns": [(key, labels.get(key, key)) for key in columns],
        "properties": properties,
        "page": page,
        "filters": filters,
        "sources": selectors.audience_sources(team=team) if team else [],
        "mailing_lists": mailing_lists,
        "list_id": list_id,
        "mailing_list": query.mailing_list,
        "query": query,
        "segments": list(Segment.objects.filter(team=team)),
        "segment_text": conditions_describe(query.segment.conditions, query.builder.catalogue) if query.segment else "",
        "segment_params": selectors.audience_params(request.GET),
        # A list its rules name was deleted since (a list's delete confirmation warned): say what that rule does now
        "segment_list_deleted": bool(
            query.segment and conditions_lists(query.segment.conditions) - {m.pk for m in mailing_lists}
        ),
        "builder_open": "builder" in request.GET,
        "filtered": filtered,
        "counts": counts,
        "querystring": request.GET.copy(),
        "test_data": not filters.livemode,
    }
    template = "contacts/_rows.html" if request.htmx and request.GET.get("after") else "contacts/list.html"
    return render(request, template, context)


COLUMNS_MAX = 8


def _columns(request: HttpRequest, team, known: set[str]) -> list[str]:
    """The property columns the user chose (`?cols=1&col=…`), remembered for the team in the session."""
    key = f"audience_columns_{team.pk}"
    if request.GET.get("cols"):
        chosen = [name for name in request.GET.getlist("col") if name in known][:COLUMNS_MAX]
        request.session[key] = chosen
        return chosen
    return [name for name in request.session.get(key, []) if name in known][:COLUMNS_MAX]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return str(value)[:80]


@login_required
def contact_detail(request: HttpRequest, pk: int) -> HttpResponse:
    contact = team_object_or_404(Contact, request.team, pk=pk)
    return render(
        request,
        "contacts/detail.html",
        {
            "contact": contact,
            "resubscribe_refused": services.resubscribe_refused(contact)
            and services.resubscribe_refused_message(contact),
            "mailing_lists": MailingList.objects.filter(team=request.team, listmembership__contact=contact),
            "events": contact.events.order_by("-occurred_at", "-id")[:50],
            "runs": contact.loop_runs.select_related("loop", "event").order_by("-created_at")[:50],
            "emails": contact.emails.order_by("-created_at")[:50],
            "timeline": contact_timeline(contact=contact),
        },
    )


def _save(request: HttpRequest, form: ContactForm, message: str) -> HttpResponse | None:
    if request.method == "POST" and form.is_valid():
        try:
            contact = services.contact_save(
                team=request.team,
                contact=form.save(commit=False),
                properties=form.cleaned_data.get("properties") or {},
                mailing_lists=form.cleaned_data["mailing_lists"],
                was_subscribed=form.initial.get("subscribed", True) if form.instance.pk else True,
            )
        except ValidationError as exc:
            form.add_error(None, exc)  # by field: the email taken meanwhile, the property cap reached
            return None
        messages.success(request, message.format(email=contact.email))
        return redirect("contacts:detail", pk=contact.pk)
    return None


@login_required
def contact_new(request: HttpRequest) -> HttpResponse:
    if not request.team:
        return redirect("home")
    form = ContactForm(request.POST or None, team=request.team)
    return _save(request, form, "{email} was added to your audience.") or render(
        request, "contacts/form.html", {"form": form, "title": "Add a contact"}
    )


@login_required
def contact_edit(request: HttpRequest, pk: int) -> HttpResponse:
    contact = team_object_or_404(Contact, request.team, pk=pk)
    form = ContactForm(request.POST or None, instance=contact, team=request.team)
    return _save(request, form, "Saved {email}.") or render(
        request, "contacts/form.html", {"form": form, "title": f"Edit {contact.email}", "contact": contact}
    )


@login_required
def contact_delete(request: HttpRequest, pk: int) -> HttpResponse:
    contact = team_object_or_404(Contact, request.team, pk=pk)
    if request.method == "POST":
        services.contact_delete(contact=contact)
        messages.success(request, f"{contact.email} was deleted.")
        return redirect("contacts:list")
    return render(request, "contacts/delete.html", {"contact": contact})


@login_required
@require_POST
def contact_subscription(request: HttpRequest, pk: int) -> HttpResponse:
    contact = team_object_or_404(Contact, request.team, pk=pk)
    wanted = request.POST.get("subscribed")
    if wanted not in {"yes", "no"}:  # the state asked for, never a guess: anything else changes nothing
        messages.error(request, "Nothing changed: say subscribed=yes or subscribed=no.")
        return redirect("contacts:detail", pk=contact.pk)
    subscribed = wanted == "yes"
    try:
        services.contact_set_subscribed(contact=contact, subscribed=subscribed, by=Contact.UnsubscribedBy.TEAM)
    except services.ResubscribeRefused as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("contacts:detail", pk=contact.pk)
    messages.success(request, f"{contact.email} is {'subscribed' if subscribed else 'unsubscribed'}.")
    return redirect("contacts:detail", pk=contact.pk)
