"""Settings → Incoming webhooks → Stripe: endpoints, their secret, their event settings, test events."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.decorators import team_admin_required
from accounts.selectors import team_object_or_404
from loopsync.site import absolute_url

from . import selectors, services
from .forms import EndpointForm, EventSettingsForm, SecretForm
from .models import Endpoint
from .receiving import WebhookRejected
from .stripe_events import SUPPORTED_EVENTS


def _endpoint(request: HttpRequest, pk: int) -> Endpoint:
    return team_object_or_404(Endpoint, request.team, pk=pk)


def _render_detail(request, endpoint, *, secret_form=None, settings_form=None, outcome=None, status=200):
    return render(
        request,
        "webhooks/stripe_endpoint.html",
        {
            "endpoint": endpoint,
            "receive_url": absolute_url(endpoint.get_receive_path()),
            "secret_form": secret_form or SecretForm(),
            "settings_form": settings_form
            or EventSettingsForm(type_settings=selectors.endpoint_type_settings(endpoint=endpoint)),
            "suggestions": selectors.trigger_name_suggestions(team=endpoint.team),
            "outcome": outcome,
        },
        status=status,
    )


@login_required
def endpoint_list(request: HttpRequest) -> HttpResponse:
    endpoints = selectors.endpoints_for_team(team=request.team or None)
    return render(request, "webhooks/stripe_endpoints.html", {"endpoints": endpoints})


@team_admin_required  # logged in, and an owner or admin of the current team
def endpoint_new(request: HttpRequest) -> HttpResponse:
    if not request.team:
        return redirect("home")
    form = EndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        endpoint = services.endpoint_create(
            team=request.team, name=form.cleaned_data["name"], mode=form.cleaned_data["mode"]
        )
        messages.success(request, "Endpoint created. Paste its URL into Stripe, then its signing secret here.")
        return redirect("webhook-settings:detail", pk=endpoint.pk)
    return render(request, "webhooks/stripe_endpoint_new.html", {"form": form})


@login_required
def endpoint_detail(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _endpoint(request, pk)
    delivery = selectors.endpoint_delivery(endpoint=endpoint, delivery_id=request.GET.get("test"))
    outcome = selectors.delivery_outcome(delivery=delivery) if delivery else None
    return _render_detail(request, endpoint, outcome=outcome)


@team_admin_required
@require_POST
def endpoint_secret(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _endpoint(request, pk)
    form = SecretForm(request.POST)
    if not form.is_valid():
        return _render_detail(request, endpoint, secret_form=form, status=400)
    services.endpoint_secret_save(endpoint=endpoint, secret=form.cleaned_data["secret"])
    messages.success(request, f"Signing secret saved ({endpoint.secret_hint}).")
    return redirect("webhook-settings:detail", pk=endpoint.pk)


@team_admin_required
@require_POST
def endpoint_events(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _endpoint(request, pk)
    form = EventSettingsForm(request.POST, type_settings=selectors.endpoint_type_settings(endpoint=endpoint))
    if not form.is_valid():
        return _render_detail(request, endpoint, settings_form=form, status=400)
    services.endpoint_settings_save(endpoint=endpoint, settings=form.cleaned_settings())
    messages.success(request, "Event settings saved.")
    return redirect("webhook-settings:detail", pk=endpoint.pk)


@team_admin_required
@require_POST
def endpoint_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _endpoint(request, pk)
    # The state asked for, not a flip: a second submit of the same form changes nothing.
    services.endpoint_set_enabled(endpoint=endpoint, enabled=request.POST.get("enabled") == "yes")
    messages.success(request, f"{endpoint.name} is {'enabled' if endpoint.enabled else 'disabled'}.")
    return redirect("webhook-settings:detail", pk=endpoint.pk)


@team_admin_required
def endpoint_delete(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _endpoint(request, pk)
    if request.method == "POST":
        services.endpoint_delete(endpoint=endpoint)
        messages.success(request, f"{endpoint.name} was deleted.")
        return redirect("webhook-settings:list")
    return render(request, "webhooks/stripe_endpoint_delete.html", {"endpoint": endpoint})


@login_required
@require_POST
def endpoint_test(request: HttpRequest, pk: int, event_type: str) -> HttpResponse:
    endpoint = _endpoint(request, pk)
    if event_type not in SUPPORTED_EVENTS:
        raise Http404
    user = request.user
    try:
        received = services.endpoint_test_send(
            endpoint=endpoint, event_type=event_type, email=user.email, name=user.get_full_name()
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("webhook-settings:detail", pk=endpoint.pk)
    except WebhookRejected as exc:
        messages.error(request, f"The test event was refused: {exc.message}")
        return redirect("webhook-settings:detail", pk=endpoint.pk)
    messages.success(request, f"Test {event_type} sent.")
    if not (user.email or "").strip():
        messages.warning(
            request,
            "Your account has no email address, so the test contact is test@example.com and its loops' email is "
            "skipped (test-mode email goes only to team members' addresses).",
        )
    detail = reverse("webhook-settings:detail", args=[endpoint.pk])
    return redirect(f"{detail}?test={received.delivery_id}#test-result")


@login_required
def endpoint_test_result(request: HttpRequest, pk: int, delivery_id: int) -> HttpResponse:
    endpoint = _endpoint(request, pk)
    delivery = selectors.endpoint_delivery(endpoint=endpoint, delivery_id=delivery_id)
    if delivery is None:
        raise Http404
    n = request.GET.get("n", "0")
    tries = int(n) if n.isascii() and n.isdecimal() and len(n) < 4 else 0  # polling stops after a minute
    return render(
        request,
        "webhooks/_stripe_test_result.html",
        {"endpoint": endpoint, "outcome": selectors.delivery_outcome(delivery=delivery), "tries": tries},
    )
