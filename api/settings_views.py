"""Settings → API: the team's API keys. A new key is shown once, in the answer to the POST that made it."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers

from accounts.decorators import team_admin_required
from accounts.selectors import team_object_or_404
from loopsync.site import absolute_url

from .forms import ApiKeyForm
from .models import ApiKey
from .services import KeyCreatedAlready, api_key_create, api_key_revoke


def _render_list(request: HttpRequest, *, form: ApiKeyForm | None = None, status: int = 200) -> HttpResponse:
    team = request.team or None
    keys = (
        ApiKey.objects.filter(team=team).select_related("created_by").order_by("-created_at", "-id")
        if team
        else ApiKey.objects.none()
    )
    return render(
        request,
        "api/api_keys.html",
        {"keys": keys, "form": form or ApiKeyForm(), "api_base": absolute_url("/api/")},
        status=status,
    )


@login_required
def key_list(request: HttpRequest) -> HttpResponse:
    return _render_list(request)


@team_admin_required  # logged in, and an owner or admin of the current team
def key_create(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return redirect("api-settings:list")
    if not request.team:
        return redirect("home")
    form = ApiKeyForm(request.POST)
    if not form.is_valid():
        return _render_list(request, form=form, status=400)
    try:
        new = api_key_create(
            team=request.team,
            name=form.cleaned_data["name"],
            created_by=request.user,
            request_id=form.cleaned_data["request_id"],
        )
    except KeyCreatedAlready as exc:  # the page that showed the key was reloaded: no second key, no key shown
        messages.info(
            request,
            f"{exc.api_key.name} ({exc.api_key.prefix}…) was created already, and its key shown once. "
            "If you did not copy it, revoke it and create another.",
        )
        return redirect("api-settings:list")
    # No redirect, no session, no message: the full key exists only in this response, which no cache keeps.
    response = render(
        request,
        "api/api_key_created.html",
        {"api_key": new.api_key, "key": new.key, "api_base": absolute_url("/api/")},
    )
    add_never_cache_headers(response)
    return response


@team_admin_required
def key_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    api_key = team_object_or_404(ApiKey, request.team, pk=pk)
    if request.method == "POST":
        was_active = api_key.active
        api_key_revoke(api_key=api_key)
        if was_active:
            messages.success(request, f"{api_key.name} ({api_key.prefix}…) was revoked: requests with it are refused.")
        else:
            messages.info(request, f"{api_key.name} ({api_key.prefix}…) was already revoked.")
        return redirect("api-settings:list")
    return render(request, "api/api_key_revoke.html", {"api_key": api_key})
