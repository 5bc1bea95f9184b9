"""Transactional emails: defined here, sent by an app through `POST /api/v1/transactional`."""

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.selectors import team_object_or_404
from contacts.selectors import contact_find
from loopsync.csp import email_preview_policy
from loopsync.site import absolute_url

from . import selectors, services
from .forms import TransactionalForm
from .models import EmailMessage, TransactionalEmail
from .rendering import EMAIL_TEMPLATE_FIELDS, SAMPLE_CONTEXT, contact_context, email_preview


def _transactional(request: HttpRequest, pk: int) -> TransactionalEmail:
    return team_object_or_404(TransactionalEmail, request.team, pk=pk)


@login_required
def transactional_list(request: HttpRequest) -> HttpResponse:
    emails = (
        TransactionalEmail.objects.filter(team=request.team or None)
        .annotate(sent=Count("messages", filter=Q(messages__status=EmailMessage.Status.SENT)))
        .order_by("name", "id")
    )
    return render(request, "loops/transactional_list.html", {"emails": emails})


def _sample_value(name: str) -> str:
    # A link's variable gets a URL: "[Reset]({{ data.reset_url }})" with "sample reset_url" in it is no link at all,
    # and the preview would show the Markdown as written.
    if name.lower().endswith(("url", "link")):
        return f"https://example.com/{name}"
    return f"sample {name}"


def _sample_data(names: list[str]) -> str:
    return json.dumps({name: _sample_value(name) for name in names}, indent=2)


def _render_form(request, form, *, transactional=None, preview_data="", preview_email="", status=200):
    names = transactional.required_variables if transactional else []
    preview_data = preview_data or _sample_data(names)
    return render(
        request,
        "loops/transactional.html",
        {
            "form": form,
            "transactional": transactional,
            "preview": _preview(request, form, preview_data, preview_email),
            "preview_data": preview_data,
            "preview_email": preview_email,
            "preview_contacts": selectors.preview_contacts(team=request.team),
            "api_url": absolute_url("/api/v1/transactional"),
            "figures": selectors.transactional_figures(transactional=transactional) if transactional else None,
        },
        status=status,
    )


@login_required
@email_preview_policy
def transactional_new(request: HttpRequest) -> HttpResponse:
    form = TransactionalForm(request.POST or None, instance=TransactionalEmail(team=request.team))
    if request.method == "POST" and form.is_valid():
        transactional = services.transactional_save(transactional=form.save(commit=False))
        messages.success(
            request, f"“{transactional.name}” saved. Send it with transactionalId {transactional.public_id}."
        )
        return redirect("loops:transactional", pk=transactional.pk)
    status = 400 if form.is_bound else 200
    return _render_form(request, form, preview_data=request.POST.get("preview_data", ""), status=status)


@login_required
@email_preview_policy
def transactional_edit(request: HttpRequest, pk: int) -> HttpResponse:
    transactional = _transactional(request, pk)
    form = TransactionalForm(request.POST or None, instance=transactional)
    if request.method == "POST" and form.is_valid():
        services.transactional_save(transactional=form.save(commit=False))
        messages.success(request, f"“{transactional.name}” saved.")
        return redirect("loops:transactional", pk=transactional.pk)
    if form.is_bound:
        transactional = _transactional(request, pk)  # the page shows what is saved
    return _render_form(
        request,
        form,
        transactional=transactional,
        preview_data=request.POST.get("preview_data", ""),
        preview_email=request.POST.get("preview_email", ""),
        status=400 if form.is_bound else 200,
    )


@login_required
def transactional_delete(request: HttpRequest, pk: int) -> HttpResponse:
    transactional = _transactional(request, pk)
    if request.method == "POST":
        services.transactional_delete(transactional=transactional)
        messages.success(request, f"“{transactional.name}” was deleted.")
        return redirect("loops:transactional-list")
    return render(request, "loops/transactional_delete.html", {"transactional": transactional})


@login_required
@require_POST
def transactional_preview(request: HttpRequest) -> HttpResponse:
    form = TransactionalForm(request.POST, instance=TransactionalEmail(team=request.team))
    preview = _preview(request, form, request.POST.get("preview_data", ""), request.POST.get("preview_email", ""))
    return render(request, "loops/_preview.html", {"preview": preview})


def _data_problem(data: dict) -> str | None:
    """What the API would refuse in these data variables (its caps, with the same messages), or None."""
    limit = settings.DATA_VARIABLES_PER_REQUEST
    if len(data) > limit:
        return (
            f"At most {limit:,} data variables in one request (DATA_VARIABLES_PER_REQUEST); this one has {len(data):,}."
        )
    max_chars = settings.DATA_VARIABLE_MAX_CHARS
    stack = [(str(key), value) for key, value in data.items()]
    while stack:  # iterative: the data may nest as deep as the JSON parser goes
        path, value = stack.pop()
        if isinstance(value, str) and len(value) > max_chars:
            return f"{path}: A value is at most {max_chars:,} characters (DATA_VARIABLE_MAX_CHARS)."
        if isinstance(value, dict):
            stack.extend((f"{path}.{key}", item) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", item) for index, item in enumerate(value))
    return None


def _preview(request, form, preview_data: str, preview_email: str) -> dict:
    values = form.data if form.is_bound else {f: getattr(form.instance, f) for f in EMAIL_TEMPLATE_FIELDS}
    contact = contact_find(team=request.team, email=preview_email) if request.team else None
    problems = []
    try:
        if len(preview_data.encode()) > settings.API_MAX_BODY_BYTES:
            raise OverflowError
        data = json.loads(preview_data) if preview_data.strip() else {}
        if not isinstance(data, dict):
            raise ValueError
    except OverflowError:
        limit = settings.API_MAX_BODY_BYTES
        problems.append(f"The preview data is longer than an API request may be: {limit:,} bytes (API_MAX_BODY_BYTES).")
        data = {}
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the JSON parser goes
        problems.append("The preview data is not a JSON object.")
        data = {}
    problem = _data_problem(data)
    if problem is not None:  # the API refuses such data: previewing it would show what can never be sent
        problems.append(f"The preview data is over the API's caps: {problem}")
        data = {}
    context = {
        "contact": contact_context(contact) if contact else SAMPLE_CONTEXT["contact"],
        "data": data,
        "unsubscribe_url": "",
    }
    preview = email_preview(values=values, context=context, problems=problems)
    return {**preview, "missing": bool(preview_email.strip()) and contact is None}
