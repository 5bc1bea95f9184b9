"""The Team page: members and their roles, invitations. Everyone in the team sees it; changes need a role
(accounts.decorators), and the services check the finer rules (who may remove whom, the last owner)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from loopsync.site import absolute_url

from .decorators import current_membership, team_admin_required, team_owner_required
from .forms import InviteForm, RoleForm
from .models import Invitation, Membership
from .selectors import team_object_or_404
from .services import (
    invitation_create,
    invitation_revoke,
    invitation_roles_for,
    invitations_open,
    membership_can_remove,
    membership_remove,
    membership_role_set,
)


def _render_team(request: HttpRequest, *, form: InviteForm | None = None, status: int = 200) -> HttpResponse:
    team = request.team
    actor = current_membership(request)
    memberships = list(team.memberships.select_related("user").order_by("created_at", "id"))
    owners = sum(1 for membership in memberships if membership.is_owner)
    for membership in memberships:
        # The only owner can be neither removed nor demoted (the service refuses): offer neither.
        membership.sole_owner = membership.is_owner and owners == 1
        membership.removable = not membership.sole_owner and membership_can_remove(actor=actor, membership=membership)
    return render(
        request,
        "accounts/team.html",
        {
            "form": form or InviteForm(roles=invitation_roles_for(actor)),
            "memberships": memberships,
            "invitations": invitations_open(team=team),
            "roles": Membership.Role.choices,
            "me": actor,
        },
        status=status,
    )


@login_required
def team_members(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":  # the invitation form
        return team_invite(request)
    if not request.team:
        return redirect("home")
    return _render_team(request)


@team_admin_required
@require_POST
def team_invite(request: HttpRequest) -> HttpResponse:
    """The Team page's POST: invite someone (owners and admins)."""
    form = InviteForm(request.POST, roles=invitation_roles_for(current_membership(request)))
    if not form.is_valid():
        return _render_team(request, form=form, status=400)
    try:
        invitation = invitation_create(
            team=request.team,
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            invited_by=request.user,
            accept_url=lambda token: absolute_url(reverse("invitation", args=[token])),
        )
    except ValidationError as exc:
        form.add_error("email", exc)
        return _render_team(request, form=form, status=400)
    messages.success(request, f"Invitation sent to {invitation.email}.")
    return redirect("team-members")


@team_admin_required
@require_POST
def team_invitation_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    # No confirmation page: inviting again undoes it.
    invitation = team_object_or_404(Invitation.objects.filter(accepted_at__isnull=True), request.team, pk=pk)
    invitation_revoke(invitation=invitation, actor=current_membership(request))
    messages.success(request, f"The invitation to {invitation.email} was revoked: its link no longer works.")
    return redirect("team-members")


@team_owner_required
@require_POST
def team_member_role(request: HttpRequest, pk: int) -> HttpResponse:
    membership = team_object_or_404(Membership.objects.select_related("user", "team"), request.team, pk=pk)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose owner, admin or member.")
        return redirect("team-members")
    try:
        membership_role_set(membership=membership, role=form.cleaned_data["role"], actor=current_membership(request))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("team-members")
    role = membership.get_role_display().lower()
    messages.success(request, f"{membership.user.get_username()} is now {'an' if role[0] in 'aeiou' else 'a'} {role}.")
    return redirect("team-members")


@login_required
def team_member_remove(request: HttpRequest, pk: int) -> HttpResponse:
    """Remove a member (owners: anyone; admins: plain members), or leave the team (your own row).
    Its own permission check: every member may leave, so this is not a plain admin-only view."""
    membership = team_object_or_404(Membership.objects.select_related("user", "team"), request.team, pk=pk)
    actor = current_membership(request)
    if not membership_can_remove(actor=actor, membership=membership):
        raise PermissionDenied("Only owners can remove owners and admins; admins can remove members.")
    leaving = membership.pk == actor.pk
    if request.method == "POST":
        try:
            membership_remove(membership=membership, actor=actor)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("team-members")
        if leaving:
            messages.success(request, f"You left {membership.team.name}.")
            return redirect("home")
        messages.success(request, f"{membership.user.get_username()} was removed from {membership.team.name}.")
        return redirect("team-members")
    return render(request, "accounts/member_remove.html", {"membership": membership, "leaving": leaving})
