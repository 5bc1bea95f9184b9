"""Audience → segments: save the filters the Audience shows as a named segment, and delete one (after asking).
Any member of the team may do both."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.selectors import team_object_or_404

from . import selectors, services
from .conditions import conditions_describe
from .models import Segment


@login_required
@require_POST
def segment_new(request: HttpRequest) -> HttpResponse:
    """The filters come as the Audience's page had them (hidden copies of its query string)."""
    query = selectors.audience_filter(team=request.team, params=request.POST)
    back = dict(selectors.audience_params(request.POST))
    audience = reverse("contacts:list")
    if not query.can_match:
        messages.error(request, "Fix the filters first: nothing was saved.")
        return redirect(f"{audience}?{urlencode(back)}")
    f = query.filters
    tree = services.audience_tree(
        q=f.q, source=f.source, subscribed=f.subscribed, list_id=f.mailing_list_id, conditions=f.conditions
    )
    try:
        segment = services.segment_create(
            team=request.team,
            user=request.user,
            name=request.POST.get("segment_name", ""),
            tree=tree,
            catalogue=selectors.audience_catalogue(team=request.team),
        )
    except ValidationError as exc:
        messages.error(request, "The segment was not saved: " + " ".join(exc.messages))
        return redirect(f"{audience}?{urlencode(back)}")
    messages.success(request, f"Segment “{segment.name}” saved.")
    return redirect(f"{audience}?segment={segment.pk}")


@login_required
def segment_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: what the segment filters, and that its contacts stay; POST: delete it."""
    segment = team_object_or_404(Segment, request.team, pk=pk)
    if request.method == "POST":
        services.segment_delete(segment=segment)
        messages.success(request, f"Segment “{segment.name}” deleted. Its contacts are still in the Audience.")
        return redirect("contacts:list")
    described = conditions_describe(segment.conditions, selectors.audience_catalogue(team=request.team))
    return render(request, "contacts/segment_delete.html", {"segment": segment, "described": described})
