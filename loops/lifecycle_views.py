"""A loop's life outside the editor: its runs (who is where), duplicate, delete (saying what becomes of its runs),
download as JSON, and create one from an uploaded JSON file (loops.services.specs)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from accounts.selectors import team_object_or_404
from loopsync import jsonsafe
from loopsync.ids import parse_id
from loopsync.keyset import cursors, newest_first_page
from loopsync.uploads import upload_limited

from . import selectors, services
from .models import Loop, LoopRun
from .services.specs import MAX_SPEC_BYTES


def _loop(request: HttpRequest, pk: int) -> Loop:
    return team_object_or_404(Loop, request.team, pk=pk)


@login_required
@require_POST
def loop_duplicate(request: HttpRequest, pk: int) -> HttpResponse:
    loop = _loop(request, pk)
    try:
        copy = services.loop_duplicate(loop=loop)
    except services.SpecError as exc:  # a step that no longer validates (a sender domain removed since, say)
        messages.error(request, "The loop was not duplicated: " + " ".join(exc.messages))
        return redirect("loops:loop", pk=loop.pk)
    messages.success(request, f"“{copy.name}” was created as a draft copy.")
    return redirect("loops:loop", pk=copy.pk)


@login_required
def loop_delete(request: HttpRequest, pk: int) -> HttpResponse:
    loop = _loop(request, pk)
    if request.method == "POST":
        counts = services.loop_delete(loop=loop)
        messages.success(
            request,
            f"“{loop.name}” was deleted with its {counts['steps']} steps and {counts['runs']} runs "
            f"({counts['in_progress']} under way, now ended). The emails it sent stay on their contacts' pages.",
        )
        return redirect("loops:loops")
    in_progress = loop.runs.filter(status__in=[LoopRun.Status.ACTIVE, LoopRun.Status.WAITING]).count()
    return render(
        request,
        "loops/loop_delete.html",
        {"loop": loop, "runs": loop.runs.count(), "in_progress": in_progress, "steps": loop.steps.count()},
    )


@login_required
def loop_download(request: HttpRequest, pk: int) -> HttpResponse:
    loop = _loop(request, pk)
    response = JsonResponse(services.loop_export(loop=loop), json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="{slugify(loop.name) or "loop"}.json"'
    return response


@upload_limited(MAX_SPEC_BYTES)
@login_required
@require_POST
def loop_upload(request: HttpRequest) -> HttpResponse:
    """A new draft loop from an uploaded JSON file; a bad file is refused with what is wrong, and saves nothing.
    A file over the limit is refused as it streams in (loopsync.uploads), never kept whole."""
    upload = request.FILES.get("file")
    if request.upload_limit.exceeded:  # type: ignore[attr-defined]
        messages.error(request, f"A loop's JSON is at most {MAX_SPEC_BYTES:,} bytes; this file is larger.")
        return redirect("loops:loops")
    if upload is None:
        messages.error(request, "Choose a loop's JSON file to upload.")
        return redirect("loops:loops")
    raw = upload.read(MAX_SPEC_BYTES + 1)
    try:
        spec = jsonsafe.loads(raw.decode("utf-8"))  # too deep, a NUL…: refused, not a 500
    except UnicodeDecodeError:
        messages.error(request, "The file is not UTF-8 text: a loop's JSON, as “Download JSON” saves it, is.")
        return redirect("loops:loops")
    except jsonsafe.UnsafeJSON as exc:
        messages.error(request, "The file is empty." if not raw.strip() else f"The file is not JSON: {exc}")
        return redirect("loops:loops")
    try:
        loop = services.loop_import(team=request.team, spec=spec)
    except services.SpecError as exc:
        messages.error(request, "The loop was not created: " + " ".join(exc.messages))
        return redirect("loops:loops")
    messages.success(request, f"“{loop.name}” was created as a draft from the file.")
    return redirect("loops:loop", pk=loop.pk)


@login_required
def loop_runs(request: HttpRequest, pk: int) -> HttpResponse:
    """Who is where: the loop's runs, newest first, by status and by the step they are at, each linked to its
    contact."""
    loop = _loop(request, pk)
    status = request.GET.get("status", "")
    status = status if status in LoopRun.Status.values else ""
    step_id = parse_id(request.GET.get("step", ""))
    outline = [row for row in selectors.loop_outline(loop=loop) if row["type"] == "step"]
    steps = {row["step"].pk: row for row in outline}
    step_id = step_id if step_id in steps else None
    runs = LoopRun.objects.filter(loop=loop).select_related("contact", "step")
    if status:
        runs = runs.filter(status=status)
    if step_id:
        runs = runs.filter(step_id=step_id)
    page = newest_first_page(runs, field="created_at", size=selectors.PAGE_SIZE, **cursors(request))
    return render(
        request,
        "loops/runs.html",
        {
            "loop": loop,
            "page": page,
            "status": status,
            "step_id": step_id,
            "statuses": LoopRun.Status.choices,
            "steps": outline,
            "numbers": {step_pk: row["number"] for step_pk, row in steps.items()},
        },
    )
