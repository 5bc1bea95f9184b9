"""The webhook log: every delivery an endpoint received, what became of it, and a Replay button."""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.selectors import team_object_or_404
from loopsync.keyset import cursors, newest_first_page

from .models import Delivery, Endpoint
from .services.processing import delivery_replay

PAGE_SIZE = 50


@login_required
def log_index(request: HttpRequest) -> HttpResponse:
    endpoints = list(Endpoint.objects.filter(team=request.team or None).order_by("created_at", "id"))
    if len(endpoints) == 1:
        return redirect("webhook-log:endpoint", pk=endpoints[0].pk)
    return render(request, "webhooks/log_index.html", {"endpoints": endpoints})


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
    return render(request, "webhooks/delivery.html", {"delivery": delivery, "payload": payload})


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
