"""The webhook log: every delivery an endpoint received, what became of it, and a Replay button."""

import json
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.selectors import team_object_or_404
from loopsync.ids import parse_id
from loopsync.keyset import cursors, newest_first_page

from .models import Delivery, Endpoint
from .selectors import deliveries_search, delivery_outcome
from .services.processing import delivery_replay

PAGE_SIZE = 50


SEARCH_ROWS = 100  # the log across endpoints shows the newest matches, not pages
REPLAYABLE = (Delivery.Status.FAILED, Delivery.Status.IGNORED)


@login_required
def log_index(request: HttpRequest) -> HttpResponse:
    """Every endpoint's deliveries together, newest first: searchable by Stripe event id, a contact's email or an
    event type, and by status, with a bulk replay of the failed or ignored ones shown. With one endpoint and no
    search, its own (paged) log."""
    endpoints = list(Endpoint.objects.filter(team=request.team or None).order_by("created_at", "id"))
    q, status = request.GET.get("q", "").replace("\x00", "").strip()[:254], request.GET.get("status", "")
    if len(endpoints) == 1 and not q and not status:
        return redirect("webhook-log:endpoint", pk=endpoints[0].pk)
    deliveries = deliveries_search(team=request.team, endpoints=endpoints, q=q, status=status, limit=SEARCH_ROWS)
    context = {
        "endpoints": endpoints,
        "deliveries": deliveries,
        "q": q,
        "status": status,
        "statuses": Delivery.Status.choices,
        "limit": SEARCH_ROWS,
        "replayable": [d for d in deliveries if d.status in REPLAYABLE and not d.mode_mismatch],
    }
    return render(request, "webhooks/log_index.html", context)


@login_required
@require_POST
def deliveries_replay(request: HttpRequest) -> HttpResponse:
    """Replay the failed or ignored deliveries the search shows (their ids come with the form, checked here)."""
    ids = [pk for pk in map(parse_id, request.POST.getlist("ids")[:SEARCH_ROWS]) if pk]
    chosen = Delivery.objects.filter(team=request.team, pk__in=ids, status__in=REPLAYABLE).order_by("id")
    replayed = sum(delivery_replay(delivery=delivery) == Delivery.Status.RECEIVED for delivery in chosen)
    messages.success(request, f"{replayed} deliver{'y' if replayed == 1 else 'ies'} replayed: they go through again.")
    back = {key: request.POST.get(key, "") for key in ("q", "status") if request.POST.get(key)}
    return redirect(f"{reverse('webhook-log:index')}?{urlencode(back)}" if back else reverse("webhook-log:index"))


@login_required
def log_endpoint(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = team_object_or_404(Endpoint, request.team, pk=pk)
    status = request.GET.get("status", "")
    deliveries = endpoint.deliveries.order_by("-received_at", "-id").defer("payload")
    if status in Delivery.Status.values:
        deliveries = deliveries.filter(status=status)
    page = newest_first_page(deliveries, field="received_at", size=PAGE_SIZE, **cursors(request))
    return render(
        request,
        "webhooks/log.html",
        {"endpoint": endpoint, "page": page, "status": status, "statuses": Delivery.Status.choices},
    )


@login_required
def delivery_detail(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = team_object_or_404(Delivery.objects.select_related("endpoint"), request.team, pk=pk)
    payload = json.dumps(delivery.payload, indent=2, sort_keys=False)
    outcome = delivery_outcome(delivery=delivery)
    context = {"delivery": delivery, "payload": payload, "outcome": outcome}
    return render(request, "webhooks/delivery.html", context)


@login_required
@require_POST
def delivery_replay_view(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = team_object_or_404(Delivery, request.team, pk=pk)
    status = delivery_replay(delivery=delivery)
    if status == Delivery.Status.RECEIVED:
        messages.success(request, "Replayed: the delivery goes through the pipeline again.")
    else:
        delivery.refresh_from_db()
        why = delivery.get_ignored_reason_display() or delivery.get_status_display()
        messages.error(request, f"Not replayed: {why}.")
    return redirect("webhook-log:delivery", pk=delivery.pk)
