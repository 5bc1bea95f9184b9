"""Settings → Sending: the default sender, the operator's allowed domains, and the team's own domains
(add, show the TXT record to publish, verify, delete). Everyone sees it; owners and admins change it.
Verify only asks a worker for the DNS lookup; the domain's row polls (htmx) until the outcome is in."""

from anymail.utils import get_anymail_setting
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from loopsync.site import absolute_url

from .decorators import team_admin_required
from .forms import SenderDomainForm
from .models import SenderDomain
from .selectors import team_object_or_404
from .services.senders import sender_domain_add, sender_domain_check_request, sender_domain_delete
from .services.teams import team_tracking_set

STATUS_POLLS = 60  # a checking row asks again every second, for a minute at most


def _domain(request: HttpRequest, pk: int) -> SenderDomain:
    return team_object_or_404(SenderDomain, request.team, pk=pk)


def _render_list(request: HttpRequest, *, form: SenderDomainForm | None = None, status: int = 200) -> HttpResponse:
    team = request.team or None
    domains = SenderDomain.objects.filter(team=team) if team else SenderDomain.objects.none()
    return render(
        request,
        "accounts/sending.html",
        {
            "domains": domains,
            "form": form or SenderDomainForm(),
            "default_sender": settings.DEFAULT_FROM_EMAIL,
            "allowed_domains": settings.ALLOWED_SENDER_DOMAINS,
            "max_polls": STATUS_POLLS,
            "provider_webhooks": bool(get_anymail_setting("webhook_secret", default=None)),
            "provider_webhook_url": absolute_url("/anymail/<provider>/tracking/"),
        },
        status=status,
    )


@login_required
def sending_settings(request: HttpRequest) -> HttpResponse:
    return _render_list(request)


@team_admin_required
@require_POST
def tracking_set(request: HttpRequest) -> HttpResponse:
    enabled = request.POST.get("email_tracking") == "on"
    team_tracking_set(team=request.team, enabled=enabled)
    messages.success(request, "Opens and clicks are tracked." if enabled else "Opens and clicks are no longer tracked.")
    return redirect(reverse("sending-settings:list") + "#tracking")


@team_admin_required
@require_POST
def sender_domain_new(request: HttpRequest) -> HttpResponse:
    form = SenderDomainForm(request.POST)
    if not form.is_valid():
        return _render_list(request, form=form, status=400)
    try:
        domain = sender_domain_add(team=request.team, domain=form.cleaned_data["domain"])
    except ValidationError as exc:
        form.add_error("domain", exc)
        return _render_list(request, form=form, status=400)
    messages.success(request, f"{domain.domain} added. Publish its TXT record, then press Verify.")
    # The form posts to …#new-domain, so that a refusal shows its message in view; a success shows the page.
    return redirect(reverse("sending-settings:list") + "#top")


@team_admin_required
@require_POST
def sender_domain_check(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        domain = sender_domain_check_request(sender_domain=_domain(request, pk))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("sending-settings:list")
    # Without a broker (development) the check already ran, at commit; otherwise a worker has it.
    done = SenderDomain.objects.filter(pk=domain.pk, check_pending=False).first()
    if done is None:
        messages.info(request, f"Checking {domain.domain}: its status below changes when the lookup is done.")
    elif done.last_error:
        messages.error(request, f"{done.domain} is not verified: {done.last_error}")
    else:
        messages.success(request, f"{done.domain} is verified: emails can now be sent from any address on it.")
    return redirect("sending-settings:list")


@login_required
def sender_domain_status(request: HttpRequest, pk: int) -> HttpResponse:
    """One domain's row, polled by the list while a check is pending (templates/accounts/_sender_domain.html)."""
    domain = _domain(request, pk)
    n = request.GET.get("n", "0")
    tries = int(n) if n.isascii() and n.isdecimal() and len(n) < 4 else 0
    return render(request, "accounts/_sender_domain.html", {"d": domain, "tries": tries, "max_polls": STATUS_POLLS})


@team_admin_required
def sender_domain_remove(request: HttpRequest, pk: int) -> HttpResponse:
    domain = _domain(request, pk)
    if request.method == "POST":
        sender_domain_delete(sender_domain=domain)
        messages.success(request, f"{domain.domain} was deleted.")
        return redirect("sending-settings:list")
    return render(request, "accounts/sender_domain_delete.html", {"domain": domain})
