"""Audience → Import and Export: upload a CSV, map its columns, follow the import's progress, download the rows
it refused; export the Audience (as filtered) as CSV. The work is contacts.services.importing and exporting."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.selectors import team_object_or_404
from loopsync.testdata import test_data_requested
from loopsync.uploads import upload_limited

from . import selectors, services
from .models import Contact, ContactImport
from .services.importing import FIELDS, IMPORT_MAX_BYTES, IMPORT_MAX_COLUMNS, IMPORT_MAX_ROWS, PROPERTY, targets

HISTORY = 50  # imports listed, newest first


def _csv_response(lines, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
def import_index(request: HttpRequest) -> HttpResponse:
    """The upload form and the team's imports, newest first."""
    imports = ContactImport.objects.filter(team=request.team).defer("data", "scan").order_by("-created_at", "-id")
    return render(
        request,
        "contacts/imports.html",
        {
            "imports": imports[:HISTORY],
            "history": HISTORY,
            "limits": {"mb": IMPORT_MAX_BYTES // 1024 // 1024, "rows": IMPORT_MAX_ROWS, "columns": IMPORT_MAX_COLUMNS},
        },
    )


@upload_limited(IMPORT_MAX_BYTES)
@login_required
@require_POST
def import_upload(request: HttpRequest) -> HttpResponse:
    upload = request.FILES.get("file")
    if request.upload_limit.exceeded:  # type: ignore[attr-defined]
        messages.error(request, f"A file is at most {IMPORT_MAX_BYTES // 1024 // 1024} MB: split it in parts.")
        return redirect("contacts:imports")
    if upload is None:
        messages.error(request, "Choose a CSV file to upload.")
        return redirect("contacts:imports")
    try:
        contact_import = services.import_create(
            team=request.team, user=request.user, filename=upload.name or "", raw=upload.read()
        )
    except services.ImportError_ as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("contacts:imports")
    return redirect("contacts:import", pk=contact_import.pk)


def _mapping_context(contact_import: ContactImport, chosen: list[str]) -> dict:
    """Each column with its samples, the type its values suggest, and the targets to pick from (a new property
    named after the column among them): what the upload's scan found, kept on the import (the file is not read)."""
    scan = services.import_scan(contact_import)
    known = targets(team=contact_import.team)
    known_names = {name for name, _ in known}
    columns = []
    for index, column in enumerate(scan.columns):
        proposed = contact_import.mapping[index] if index < len(contact_import.mapping) else ""
        options = list(known)
        if proposed.startswith(PROPERTY) and proposed not in known_names:
            options.append((proposed, f"New property: {proposed.removeprefix(PROPERTY)} ({column.type})"))
        columns.append(
            {
                "index": index,
                "header": column.header or f"Column {index + 1}",
                "samples": column.samples,
                "options": options,
                "chosen": chosen[index] if index < len(chosen) else "",
            }
        )
    return {"columns": columns, "preview": scan.preview, "fields": FIELDS}


@login_required
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """While it waits for its mapping: the columns to map (POST starts it). Then its progress, polled by htmx
    (`?progress=1` gives the fragment), and its summary with the refused rows to download."""
    contact_import = team_object_or_404(ContactImport.objects.defer("data"), request.team, pk=pk)
    if request.htmx and request.GET.get("progress"):
        return render(request, "contacts/_import_progress.html", {"contact_import": contact_import})
    if contact_import.status != ContactImport.Status.MAPPING:
        return render(request, "contacts/import.html", {"contact_import": contact_import})
    chosen = contact_import.mapping
    trigger_loops = False
    status = 200
    if request.method == "POST":
        chosen = [request.POST.get(f"column_{index}", "")[:80] for index in range(len(contact_import.columns))]
        trigger_loops = request.POST.get("trigger_loops") == "on"
        try:
            services.import_start(contact_import=contact_import, mapping=chosen, trigger_loops=trigger_loops)
        except ValidationError as exc:
            messages.error(request, "The import did not start: " + " ".join(exc.messages))
            status = 400
        else:
            return redirect("contacts:import", pk=contact_import.pk)
    context = {
        "contact_import": contact_import,
        "trigger_loops": trigger_loops,
        **_mapping_context(contact_import, chosen),
    }
    return render(request, "contacts/import_mapping.html", context, status=status)


@login_required
@require_POST
def import_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Drop an upload that was never started (its file goes with it)."""
    contact_import = team_object_or_404(ContactImport.objects.defer("data"), request.team, pk=pk)
    if contact_import.status == ContactImport.Status.MAPPING:
        ContactImport.objects.filter(pk=contact_import.pk, status=ContactImport.Status.MAPPING).delete()
        messages.success(request, f"“{contact_import.filename}” was not imported.")
    return redirect("contacts:imports")


@login_required
def import_errors(request: HttpRequest, pk: int) -> HttpResponse:
    contact_import = team_object_or_404(ContactImport.objects.defer("data"), request.team, pk=pk)
    name = contact_import.filename.rsplit(".", 1)[0][:80] or "contacts"
    return _csv_response(
        services.csv_lines(services.import_errors_rows(contact_import)), f"{_safe(name)}-refused-rows.csv"
    )


def _safe(name: str) -> str:
    return "".join(char if char.isascii() and (char.isalnum() or char in "-_") else "-" for char in name)


@login_required
def contacts_export(request: HttpRequest) -> HttpResponse:
    """The Audience as its filters show it (search, source, subscribed, list, test data), as CSV, streamed."""
    query = selectors.audience_filter(team=request.team, params=request.GET, livemode=not test_data_requested(request))
    contacts = (
        selectors.audience_queryset(team=request.team, filters=query.filters)
        if query.can_match
        else Contact.objects.none()
    )
    stamp = timezone.now().strftime("%Y-%m-%d")
    return _csv_response(
        services.csv_lines(services.contacts_rows(team=request.team, contacts=contacts)), f"contacts-{stamp}.csv"
    )
