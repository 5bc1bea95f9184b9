from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from loopsync.ids import parse_id

from .forms import InviteForm, SignupForm
from .middleware import SESSION_KEY
from .selectors import teams_for_user
from .services import invitation_accept, invitation_create, invitation_for, user_signup


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user, team = user_signup(
            username=form.cleaned_data["username"],
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"],
            team_name=form.cleaned_data["team_name"],
        )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        request.session[SESSION_KEY] = team.id
        messages.success(request, f"Welcome to LoopSync! {team.name} is ready.")
        return redirect("home")
    return render(request, "accounts/signup.html", {"form": form})


@login_required
@require_POST
def team_switch(request: HttpRequest) -> HttpResponse:
    team_id = request.POST.get("team", "")
    team = teams_for_user(request.user).filter(pk=parse_id(team_id)).first() if parse_id(team_id) else None
    if team is None:
        raise Http404
    request.session[SESSION_KEY] = team.id
    messages.success(request, f"Switched to {team.name}.")
    target = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    return redirect(target)


@login_required
def team_members(request: HttpRequest) -> HttpResponse:
    team = request.team or None
    if not team:
        return redirect("home")
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        invitation_create(
            team=team,
            email=form.cleaned_data["email"],
            invited_by=request.user,
            accept_url=lambda token: request.build_absolute_uri(reverse("invitation", args=[token])),
        )
        messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
        return redirect("team-members")
    memberships = team.memberships.select_related("user").order_by("created_at")
    invitations = team.invitations.filter(accepted_at__isnull=True)[:20]
    return render(request, "accounts/team.html", {"form": form, "memberships": memberships, "invitations": invitations})


def invitation(request: HttpRequest, token: str) -> HttpResponse:
    invite = invitation_for(token)
    if invite is None:
        return render(request, "accounts/invitation.html", {"invalid": True}, status=404)
    if request.method == "POST" and request.user.is_authenticated:
        try:
            invitation_accept(invitation=invite, user=request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("home")
        request.session[SESSION_KEY] = invite.team_id
        messages.success(request, f"You joined {invite.team.name}.")
        return redirect("home")
    return render(request, "accounts/invitation.html", {"invite": invite})
