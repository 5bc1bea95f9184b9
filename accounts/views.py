"""Sign-up, the team switcher, and the invitation link (accept it, or sign up from it)."""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from loopsync.ids import parse_id

from .forms import InvitationSignupForm, SignupForm, TeamForm
from .middleware import SESSION_KEY
from .models import Invitation
from .selectors import teams_for_user
from .services import (
    invitation_accept,
    invitation_email_matches,
    invitation_for,
    team_create,
    user_signup,
    user_signup_invited,
)


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
def team_new(request: HttpRequest) -> HttpResponse:
    """A team of one's own, for a user who belongs to none (they left, or were removed): they own it."""
    form = TeamForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors.get("name", ["Give the team a name."])))
        return redirect("home")
    team = team_create(name=form.cleaned_data["name"], owner=request.user)
    request.session[SESSION_KEY] = team.id
    messages.success(request, f"{team.name} is ready: you are its owner.")
    return redirect("home")


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


def _invalid(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/invitation.html", {"invalid": True}, status=404)


def _joined(request: HttpRequest, invite: Invitation) -> HttpResponse:
    request.session[SESSION_KEY] = invite.team_id
    messages.success(request, f"You joined {invite.team.name}.")
    return redirect("home")


def invitation(request: HttpRequest, token: str) -> HttpResponse:
    invite = invitation_for(token)
    if invite is None:
        return _invalid(request)
    user = request.user
    if request.method == "POST" and user.is_authenticated:
        try:
            invitation_accept(invitation=invite, user=user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("invitation", token=token)
        return _joined(request, invite)
    context = {
        "invite": invite,
        "email_matches": user.is_authenticated and invitation_email_matches(invitation=invite, user=user),
        "already_member": user.is_authenticated and invite.team.memberships.filter(user=user).exists(),
    }
    return render(request, "accounts/invitation.html", context)


def invitation_signup(request: HttpRequest, token: str) -> HttpResponse:
    """A new account for the invited email that joins the inviting team, with no team of its own."""
    invite = invitation_for(token)
    if invite is None:
        return _invalid(request)
    if request.user.is_authenticated:
        return redirect("invitation", token=token)
    form = InvitationSignupForm(request.POST or None, invitation=invite)
    if request.method == "POST" and form.is_valid():
        try:
            user, _ = user_signup_invited(
                invitation=invite, username=form.cleaned_data["username"], password=form.cleaned_data["password1"]
            )
        except ValidationError as exc:  # used meanwhile: no account was created
            messages.error(request, " ".join(exc.messages))
            return _invalid(request)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return _joined(request, invite)
    return render(request, "accounts/signup.html", {"form": form, "invite": invite})
