"""The loop editor: a loop's name, trigger and frequency; its tree of steps (add on any path, edit, remove,
move); an email's live preview for a chosen contact; a test email to the current user; activate, pause, archive."""

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.selectors import team_object_or_404
from contacts.builder import builder_action
from contacts.selectors import contact_find
from loopsync.csp import email_preview_policy
from loopsync.ids import parse_id

from . import selectors, services
from .forms import AddStepForm, LoopForm, step_form
from .models import Event, Loop, LoopRun, LoopStep
from .rendering import EMAIL_TEMPLATE_FIELDS, RenderError, email_preview
from .services.loops import ARCHIVED_MESSAGE
from .services.sending import email_send_test
from .triggers import trigger_firing, trigger_name_suggestions, trigger_suggesting

logger = logging.getLogger(__name__)


def _loop(request: HttpRequest, pk: int) -> Loop:
    return team_object_or_404(Loop, request.team, pk=pk)


def _archived(request: HttpRequest, loop: Loop) -> HttpResponse | None:
    """An archived loop is read-only until it is restored: a change to it goes back to its page, saying so."""
    if loop.status != Loop.Status.ARCHIVED:
        return None
    messages.error(request, ARCHIVED_MESSAGE.format(name=loop.name))
    return redirect("loops:loop", pk=loop.pk)


def _step(loop: Loop, step_pk: int) -> LoopStep:
    step = LoopStep.objects.filter(loop=loop, team_id=loop.team_id, pk=step_pk).select_related("loop").first()
    if step is None:
        raise Http404("No such step in this loop.")
    return step


def _kind(value: str) -> str:
    if value not in LoopStep.Kind.values:
        raise Http404("Not a kind of step.")
    return value


def _render_loop(request: HttpRequest, loop: Loop, *, form: LoopForm | None = None, status: int = 200):
    form = form or LoopForm(instance=loop)
    if loop.status == Loop.Status.ARCHIVED:  # read-only until it is restored
        for field in form.fields.values():
            field.disabled = True
    counted = loop.runs.values("status").annotate(n=Count("id")).order_by("status")
    runs = [(row["status"], LoopRun.Status(row["status"]).label, row["n"]) for row in counted]
    return render(
        request,
        "loops/loop.html",
        {
            "loop": loop,
            "form": form,
            "nodes": selectors.loop_outline(loop=loop),
            "runs": runs,
            "problems": services.loop_activation_errors(loop) if loop.status != Loop.Status.ACTIVE else [],
            "unfired": _unfired(loop),
            "suggestions": trigger_name_suggestions(team=loop.team),
            "add_form": AddStepForm(),
            "editable": loop.status != Loop.Status.ARCHIVED,
            "catalogue": selectors.condition_fields(loop=loop),
        },
        status=status,
    )


def _unfired(loop: Loop) -> dict | None:
    """When nothing the team set up fires the loop's event (no Stripe endpoint, and it has never been
    received), what the loop page says about it: a loop from the gallery waits for a name that a new
    endpoint does not fire until the user sets it."""
    name = loop.trigger_event_name
    if loop.trigger != Loop.Trigger.EVENT or not name:
        return None
    if trigger_firing(team=loop.team, name=name) or Event.objects.filter(team=loop.team, name=name).exists():
        return None
    return {"name": name, "firing_labels": trigger_suggesting(name=name)}


@login_required
def loop_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The editor's main page; POST saves the name, trigger and frequency."""
    loop = _loop(request, pk)
    if request.method != "POST":
        return _render_loop(request, loop)
    if refused := _archived(request, loop):
        return refused
    form = LoopForm(request.POST, instance=loop)
    if not form.is_valid():
        loop.refresh_from_db()  # the page shows what is saved; the form shows what was typed
        return _render_loop(request, loop, form=form, status=400)
    services.loop_save(loop=form.save(commit=False))
    messages.success(request, "Loop saved.")
    return redirect("loops:loop", pk=loop.pk)


@login_required
@require_POST
def loop_status(request: HttpRequest, pk: int) -> HttpResponse:
    loop = _loop(request, pk)
    action = request.POST.get("action")
    if action == "activate":
        try:
            services.loop_activate(loop=loop)
            messages.success(request, f"“{loop.name}” is active.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    elif action == "archive":
        services.loop_archive(loop=loop)
        messages.success(request, f"“{loop.name}” is archived: it starts nobody, and its runs under way stopped.")
    elif action == "restore":
        services.loop_restore(loop=loop)
        messages.success(request, f"“{loop.name}” is a draft again.")
    else:
        try:
            services.loop_pause(loop=loop)
            messages.success(
                request, f"“{loop.name}” is paused: it starts nobody new, and its runs wait where they are."
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    return redirect("loops:loop", pk=loop.pk)


def _render_step(request, loop, form, *, step=None, kind, preview_email="", test_result=None, status=200, place=None):
    return render(
        request,
        "loops/step.html",
        {
            "loop": loop,
            "step": step,
            "kind": kind,
            "kind_label": LoopStep.Kind(kind).label,
            "form": form,
            "place": place or {},
            "preview_email": preview_email,
            "preview": _preview(loop, form, preview_email) if kind == LoopStep.Kind.EMAIL else None,
            "preview_contacts": selectors.preview_contacts(team=loop.team),
            "suggestions": trigger_name_suggestions(team=loop.team),
            "test_result": test_result,
        },
        status=status,
    )


def _place(request: HttpRequest, loop: Loop) -> dict:
    """Where a new step goes: after the step `after` on its `port` (or at the end of the main line)."""
    after_pk = parse_id(request.POST.get("after") or request.GET.get("after", ""))
    port = parse_id(request.POST.get("port") or request.GET.get("port", "")) or 0
    after = _step(loop, after_pk) if after_pk else None
    start = (request.POST.get("at") or request.GET.get("at")) == "start"
    return {"after": after, "port": port, "start": start}


def _form(kind: str, loop: Loop, *args, **kwargs):
    return step_form(kind, *args, catalogue=selectors.condition_fields(loop=loop), **kwargs)


@login_required
@email_preview_policy
def step_new(request: HttpRequest, pk: int) -> HttpResponse:
    loop = _loop(request, pk)
    kind = _kind(request.POST.get("kind") or request.GET.get("kind", ""))
    place = _place(request, loop)
    instance = LoopStep(kind=kind, team_id=loop.team_id, loop=loop)
    if refused := _archived(request, loop):  # its step pages too: nothing there can be saved
        return refused
    if request.method != "POST":
        return _render_step(request, loop, _form(kind, loop, instance=instance), kind=kind, place=place)
    if builder_action(request.POST):  # a filter builder's button ("Add a rule"…): the form again, changed, unsaved
        form = _form(kind, loop, instance=instance, initial=request.POST.dict())
        return _render_step(request, loop, form, kind=kind, place=place)
    form = _form(kind, loop, request.POST, instance=instance)
    if form.is_valid():
        try:
            new = form.save(commit=False)
            if place["start"]:
                step = services.step_insert(loop=loop, step=new, parent=None)
            else:
                step = services.step_add(loop=loop, step=new, after=place["after"], port=place["port"])
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("loops:loop", pk=loop.pk)
        messages.success(request, f"{step.get_kind_display()} added.")
        return redirect(f"{reverse('loops:loop', args=[loop.pk])}#step-{step.pk}")
    preview_email = request.POST.get("preview_email", "")
    return _render_step(request, loop, form, kind=kind, preview_email=preview_email, status=400, place=place)


@login_required
@email_preview_policy
def step_edit(request: HttpRequest, pk: int, step_pk: int) -> HttpResponse:
    loop = _loop(request, pk)
    step = _step(loop, step_pk)
    if refused := _archived(request, loop):
        return refused
    if request.method != "POST":
        return _render_step(request, loop, _form(step.kind, loop, instance=step), step=step, kind=step.kind)
    if builder_action(request.POST):
        form = _form(step.kind, loop, instance=step, initial=request.POST.dict())
        return _render_step(request, loop, form, step=step, kind=step.kind)
    form = _form(step.kind, loop, request.POST, instance=step)
    if form.is_valid():
        services.step_save(step=form.save(commit=False))
        messages.success(request, f"{step.get_kind_display()} saved.")
        return redirect(f"{reverse('loops:loop', args=[loop.pk])}#step-{step.pk}")
    step = _step(loop, step_pk)  # the invalid form changed the instance it was given
    return _render_step(
        request, loop, form, step=step, kind=step.kind, preview_email=request.POST.get("preview_email", ""), status=400
    )


@login_required
@require_POST
def step_move(request: HttpRequest, pk: int, step_pk: int) -> HttpResponse:
    loop = _loop(request, pk)
    step = _step(loop, step_pk)
    if refused := _archived(request, loop):
        return refused
    if not services.step_move(step=step, offset=-1 if request.POST.get("direction") == "up" else 1):
        messages.error(request, "This step cannot move that way: a branch, an experiment or the end is in the way.")
    return redirect(f"{reverse('loops:loop', args=[loop.pk])}#step-{step.pk}")


@login_required
def step_delete(request: HttpRequest, pk: int, step_pk: int) -> HttpResponse:
    loop = _loop(request, pk)
    step = _step(loop, step_pk)
    if refused := _archived(request, loop):
        return refused
    if request.method == "POST":
        removal = services.step_remove(step=step)
        messages.success(
            request,
            f"{step.get_kind_display()} removed"
            + (f" with {removal.steps - 1} step(s) under it." if removal.steps > 1 else "."),
        )
        return redirect("loops:loop", pk=loop.pk)
    context = {
        "loop": loop,
        "step": step,
        "removal": services.step_removal(step=step),
        "catalogue": selectors.condition_fields(loop=loop),
    }
    return render(request, "loops/step_delete.html", context)


# --- preview and test email ----------------------------------------------------------------------


def _preview(loop: Loop, form, preview_email: str) -> dict:
    """The email as the chosen contact would get it, from the form's current (unsaved) values."""
    # A live contact, else a test one (Audience → Test data): the same email can be in both.
    contact = contact_find(team=loop.team, email=preview_email) or contact_find(
        team=loop.team, email=preview_email, livemode=False
    )
    values = form.data if form.is_bound else {f: getattr(form.instance, f) for f in EMAIL_TEMPLATE_FIELDS}
    context = {**selectors.preview_context(loop=loop, contact=contact), "unsubscribe_url": "#"}
    preview = email_preview(values=values, context=context)
    return {**preview, "missing": bool(preview_email.strip()) and contact is None}


@login_required
@require_POST
def step_preview(request: HttpRequest, pk: int) -> HttpResponse:
    loop = _loop(request, pk)
    form = _form(LoopStep.Kind.EMAIL, loop, request.POST, instance=LoopStep(kind=LoopStep.Kind.EMAIL, loop=loop))
    preview = _preview(loop, form, request.POST.get("preview_email", ""))
    return render(request, "loops/_preview.html", {"preview": preview})


@login_required
@require_POST
@email_preview_policy  # a plain form post gets the editor back
def step_test(request: HttpRequest, pk: int) -> HttpResponse:
    """Send the email in the form, as it stands, to the current user. htmx gets the result line; a
    plain form post gets the editor back with the form kept."""
    loop = _loop(request, pk)
    step_pk = request.POST.get("step", "")
    step = _step(loop, parse_id(step_pk)) if parse_id(step_pk) else None
    instance = step or LoopStep(kind=LoopStep.Kind.EMAIL, team_id=loop.team_id, loop=loop)
    form = _form(LoopStep.Kind.EMAIL, loop, request.POST, instance=instance)
    preview_email = request.POST.get("preview_email", "")
    result = _send_test(request, loop, form, preview_email)
    if request.htmx:
        return render(request, "loops/_test_result.html", {"test_result": result})
    if step is not None:
        step = _step(loop, step.pk)
    return _render_step(
        request, loop, form, step=step, kind=LoopStep.Kind.EMAIL, preview_email=preview_email, test_result=result
    )


def _send_test(request: HttpRequest, loop: Loop, form, preview_email: str) -> dict:
    to = (request.user.email or "").strip()
    if not to:
        return {"ok": False, "text": "Your account has no email address to send a test to."}
    if not form.is_valid():
        return {"ok": False, "text": "Fix the errors in the email first: nothing was sent."}
    contact = contact_find(team=loop.team, email=preview_email)
    context = selectors.preview_context(loop=loop, contact=contact)
    try:
        email_send_test(step=form.instance, context=context, to=to)
    except RenderError as exc:  # the sample values passed the check; this contact's took it over a limit
        return {"ok": False, "text": f"Nothing was sent: {exc}"}
    except Exception as exc:  # the provider's refusal, shown to the user, who can fix the settings
        logger.warning("Test email for loop %s failed: %s", loop.pk, type(exc).__name__)
        return {"ok": False, "text": f"The test email could not be sent: {type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "text": f"Test email sent to {to}."}
