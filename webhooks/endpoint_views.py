"""Settings → Incoming webhooks → Stripe: endpoints, their secret, their event settings, test events."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from accounts.decorators import team_admin_required
from accounts.selectors import team_object_or_404
from contacts.billing import BILLING_LABELS, BILLING_PROPERTIES
from loops.triggers import trigger_name_suggestions
from loopsync.site import absolute_url

from . import selectors, services
from .forms import ApiKeyForm, CatchupForm, EndpointForm, EndpointOptionsForm, EventSettingsForm, ImportForm, SecretForm
from .models import Endpoint, StripeSync
from .services import syncs
from .services.health import endpoint_health
from .services.receiving import WebhookRejected
from .stripe_events import SUPPORTED_EVENTS


def _endpoint(request: HttpRequest, pk: int) -> Endpoint:
    return team_object_or_404(Endpoint, request.team, pk=pk)


def _render_detail(request, endpoint, *, status=200, outcome=None, **forms):
    """The endpoint's page; a refused form (`secret_form=…`) is shown with its errors, the others fresh."""
    return render(
        request,
        "webhooks/stripe_endpoint.html",
        {
            "endpoint": endpoint,
            "receive_url": absolute_url(endpoint.get_receive_path()),
            "secret_form": forms.get("secret_form") or SecretForm(),
            "settings_form": forms.get("settings_form")
            or EventSettingsForm(type_settings=selectors.endpoint_type_settings(endpoint=endpoint)),
            "options_form": forms.get("options_form") or EndpointOptionsForm(instance=endpoint),
            "api_key_form": forms.get("api_key_form") or ApiKeyForm(),
            "import_form": forms.get("import_form") or ImportForm(),
            "catchup_form": forms.get("catchup_form")
            or CatchupForm(default_since=selectors.catchup_default_since(endpoint=endpoint)),
            "syncs": selectors.endpoint_syncs(endpoint=endpoint),
            "billing_properties": [(key, kind, BILLING_LABELS[key]) for key, kind in BILLING_PROPERTIES.items()],
            "suggestions": trigger_name_suggestions(team=endpoint.team),
            "outcome": outcome,
            "health": endpoint_health(endpoint=endpoint),
        },
        status=status,
    )


@login_required
def endpoint_list(request: HttpRequest) -> HttpResponse:
    endpoints = selectors.endpoints_for_team(team=request.team or None)
    unfired = selectors.loops_unfired(team=request.team) if request.team else []
    return render(request, "webhooks/stripe_endpoints.html", {"endpoints": endpoints, "unfired": unfired})


@team_admin_required  # logged in, and an owner or admin of the current team
def endpoint_new(request: HttpRequest) -> HttpResponse:
    if not request.team:
        return redirect("home")
    form = EndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        endpoint = services.endpoint_create(
            team=request.team,
            name=form.cleaned_data["name"],
            mode=form.cleaned_data["mode"],
            triggers=selectors.template_triggers(),  # what the seeded templates listen for: none starts blank
        )
        messages.success(request, "Endpoint created. Paste its URL into Stripe, then its signing secret here.")
        return redirect("webhook-settings:detail", pk=endpoint.pk)
    return render(request, "webhooks/stripe_endpoint_new.html", {"form": form})


@login_required
def endpoint_detail(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _endpoint(request, pk)
    delivery = selectors.endpoint_delivery(endpoint=endpoint, delivery_id=request.GET.get("test"))
    outcome = selectors.delivery_outcome(delivery=delivery) if delivery else None
    return _render_detail(request, endpoint, outcome=outcome, settings_form=_unsaved_settings(request, endpoint))


@team_admin_required
@require_POST
@sensitive_post_parameters("secret")
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
    messages.success(request, "Event settings saved.", extra_tags="in-section events")
    return redirect(reverse("webhook-settings:detail", args=[endpoint.pk]) + "#events")


@team_admin_required
@require_POST
def endpoint_options(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _endpoint(request, pk)
    # The form gets its own copy: a refused form must leave `endpoint` as it is saved, for the page.
    form = EndpointOptionsForm(request.POST, instance=_endpoint(request, pk))
    if not form.is_valid():
        return _render_detail(request, endpoint, options_form=form, status=400)
    services.endpoint_options_save(
        endpoint=endpoint,
        user_group=form.cleaned_data["new_contact_user_group"],
        mailing_list=form.cleaned_data["new_contact_list"],
        customer_deleted=form.cleaned_data["customer_deleted"],
    )
    messages.success(request, "Options saved.", extra_tags="in-section options")
    return redirect(reverse("webhook-settings:detail", args=[endpoint.pk]) + "#options")


@team_admin_required
@require_POST
@sensitive_post_parameters("api_key")
def endpoint_api_key(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _endpoint(request, pk)
    if request.POST.get("remove") == "yes":
        services.endpoint_api_key_remove(endpoint=endpoint)
        messages.success(request, "Stripe key removed.", extra_tags="in-section stripe-api")
        return redirect(reverse("webhook-settings:detail", args=[endpoint.pk]) + "#stripe-api")
    form = ApiKeyForm(request.POST)
    if form.is_valid():
        try:
            services.endpoint_api_key_save(endpoint=endpoint, api_key=form.cleaned_data["api_key"])
        except ValidationError as exc:
            form.add_error("api_key", exc)
    if not form.is_valid():
        endpoint.refresh_from_db()  # the refused key is not shown, not even as a hint
        return _render_detail(request, endpoint, api_key_form=form, status=400)
    messages.success(
        request, f"Stripe key saved ({endpoint.api_key_hint}): Stripe accepted it.", extra_tags="in-section stripe-api"
    )
    return redirect(reverse("webhook-settings:detail", args=[endpoint.pk]) + "#stripe-api")


@team_admin_required
@require_POST
def endpoint_sync_start(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    endpoint = _endpoint(request, pk)
    if kind not in StripeSync.Kind.values:
        raise Http404
    if kind == StripeSync.Kind.IMPORT:
        form = ImportForm(request.POST)
    else:
        form = CatchupForm(request.POST, default_since=selectors.catchup_default_since(endpoint=endpoint))
    if form.is_valid():
        try:
            sync = syncs.sync_start(
                endpoint=endpoint,
                kind=kind,
                fire_events=form.cleaned_data.get("fire_events", False),
                since=form.cleaned_data.get("since"),
                user=request.user,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            if sync.resumed:
                begun = f"{sync.created_at:%Y-%m-%d %H:%M} UTC"
                messages.info(
                    request, f"Resumed the {sync.get_kind_display().lower()} begun {begun}, with its options."
                )
    if not form.is_valid():
        return _render_detail(request, endpoint, status=400, **{f"{kind}_form": form})
    return redirect(reverse("webhook-settings:detail", args=[endpoint.pk]) + f"#sync-{kind}")


@login_required
def endpoint_sync_progress(request: HttpRequest, pk: int, sync_id: int) -> HttpResponse:
    endpoint = _endpoint(request, pk)
    sync = team_object_or_404(StripeSync, request.team, pk=sync_id, endpoint=endpoint)
    if sync.kind == StripeSync.Kind.IMPORT:
        form = ImportForm()
    else:
        form = CatchupForm(default_since=selectors.catchup_default_since(endpoint=endpoint))
    context = {"endpoint": endpoint, "sync": sync, "kind": sync.kind, "form": form}
    return render(request, "webhooks/_stripe_sync.html", context)


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
    form = EventSettingsForm(request.POST, type_settings=selectors.endpoint_type_settings(endpoint=endpoint))
    if _settings_posted(request) and form.has_changed():
        # Sent from the events form with edits not saved yet: kept for the page it goes back to (once), so a
        # reload of that page sends nothing again
        request.session[_UNSAVED.format(pk=endpoint.pk)] = {
            key: request.POST.getlist(key) for key in request.POST if key != "csrfmiddlewaretoken"
        }
        messages.info(
            request,
            "Your changes to the event settings are not saved yet (the test used the saved ones): "
            "press “Save event settings” to keep them.",
            extra_tags="in-section events",
        )
    return redirect(f"{detail}?test={received.delivery_id}#test-result")


_UNSAVED = "endpoint_{pk}_unsaved_settings"


def _unsaved_settings(request: HttpRequest, endpoint) -> EventSettingsForm | None:
    """The event settings typed but not saved before a "Send test event", once."""
    data = request.session.pop(_UNSAVED.format(pk=endpoint.pk), None)
    if not data:
        return None
    bound = QueryDict(mutable=True)
    for key, values in data.items():
        bound.setlist(key, values)
    return EventSettingsForm(bound, type_settings=selectors.endpoint_type_settings(endpoint=endpoint))


def _settings_posted(request: HttpRequest) -> bool:
    """The events form came with the post (its "Send test event" buttons submit it)."""
    return any(key.endswith("_trigger") for key in request.POST)


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
