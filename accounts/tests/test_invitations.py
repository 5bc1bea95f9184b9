"""Invitations: for their email only, with a role; sign-up from the link; no duplicates; revocable."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Invitation, Membership, Team
from accounts.services import invitation_create

pytestmark = pytest.mark.django_db


def _invite(client, email: str, role: str = "member", **extra):
    return client.post(reverse("team-members"), {"email": email, "role": role, **extra})


def _link(mailoutbox) -> str:
    return re.search(r"https?://[^/]+(/invitations/\S+/)", mailoutbox[-1].body).group(1)


def _user(username: str, email: str):
    return get_user_model().objects.create_user(username, email)  # no password to hash: force_login


def test_an_invitation_carries_its_role_into_the_membership(logged_in, team, mailoutbox):
    _invite(logged_in, "ops@example.com", role="admin")
    assert "as admin" in mailoutbox[0].body
    invited = Client()
    invited.force_login(_user("ops", "ops@example.com"))
    invited.post(_link(mailoutbox))
    assert Membership.objects.get(team=team, user__username="ops").role == "admin"


def test_accepting_from_an_account_with_another_email_is_refused(logged_in, team, mailoutbox):
    _invite(logged_in, "newbie@example.com")
    link = _link(mailoutbox)
    stranger = Client()
    stranger.force_login(_user("stranger", "stranger@example.com"))
    page = stranger.get(link).content.decode()
    assert "this invitation is for newbie@example.com only" in page and "Join Acme</button>" not in page
    response = stranger.post(link, follow=True)
    assert "This invitation is for newbie@example.com, and you are logged in as stranger@example.com" in (
        response.content.decode()
    )
    assert not Membership.objects.filter(team=team, user__username="stranger").exists()
    assert Invitation.objects.get().accepted_at is None  # still usable by its invitee


def test_the_email_match_ignores_case(logged_in, team, mailoutbox):
    _invite(logged_in, "Newbie@Example.com")
    invited = Client()
    invited.force_login(_user("newbie", "newbie@EXAMPLE.com"))
    invited.post(_link(mailoutbox))
    assert Membership.objects.filter(team=team, user__username="newbie").exists()


def test_an_invitee_signs_up_from_the_link_and_gets_no_team_of_their_own(client, logged_in, team, mailoutbox):
    _invite(logged_in, "newbie@example.com", role="admin")
    link = _link(mailoutbox)
    client.logout()
    page = client.get(link).content.decode()
    signup_url = reverse("invitation-signup", args=[link.rstrip("/").rsplit("/", 1)[1]])
    assert signup_url in page
    form = client.get(signup_url).content.decode()
    assert "newbie@example.com" in form and 'name="team_name"' not in form and "disabled" in form
    response = client.post(
        signup_url,
        {
            "username": "newbie",
            "email": "attacker@example.com",  # ignored: the invitation's address is used
            "password1": "a-long-pass-123",
            "password2": "a-long-pass-123",
        },
    )
    assert response.status_code == 302 and response["Location"] == reverse("home")
    newbie = get_user_model().objects.get(username="newbie")
    assert newbie.email == "newbie@example.com"
    assert list(newbie.memberships.values_list("team__name", "role")) == [("Acme", "admin")]
    assert Team.objects.count() == 1
    assert client.get(reverse("home")).context["team"] == team  # logged in, in Acme
    assert client.get(link).status_code == 404  # used


def test_signup_from_the_link_for_an_email_with_an_account_says_log_in(client, logged_in, mailoutbox):
    _invite(logged_in, "known@example.com")
    _user("known", "known@example.com")
    token = _link(mailoutbox).rstrip("/").rsplit("/", 1)[1]
    client.logout()
    response = client.post(
        reverse("invitation-signup", args=[token]),
        {"username": "known2", "password1": "a-long-pass-123", "password2": "a-long-pass-123"},
    )
    assert response.status_code == 200 and "exists already: log in with it to accept" in response.content.decode()
    assert not get_user_model().objects.filter(username="known2").exists()


def test_signup_errors_keep_the_form_and_create_nothing(client, logged_in, mailoutbox):
    _invite(logged_in, "newbie@example.com")
    token = _link(mailoutbox).rstrip("/").rsplit("/", 1)[1]
    client.logout()
    response = client.post(
        reverse("invitation-signup", args=[token]),
        {"username": "newbie", "password1": "a-long-pass-123", "password2": "other-pass-456"},
    )
    assert response.status_code == 200 and 'value="newbie"' in response.content.decode()
    assert not get_user_model().objects.filter(username="newbie").exists()
    assert Invitation.objects.get().accepted_at is None


def test_signup_from_a_used_or_forged_link_is_404(client):
    assert client.get(reverse("invitation-signup", args=["forged"])).status_code == 404


def test_you_cannot_invite_yourself(logged_in, mailoutbox):
    response = _invite(logged_in, "OWNER@acme.test")
    assert response.status_code == 400 and "That is your own email address" in response.content.decode()
    assert not Invitation.objects.exists() and mailoutbox == []


def test_you_cannot_invite_a_member(logged_in, member, mailoutbox):
    response = _invite(logged_in, "Member@Acme.test")
    assert response.status_code == 400 and "is a member of Acme already" in response.content.decode()
    assert not Invitation.objects.exists() and mailoutbox == []


def test_a_second_invitation_to_the_same_email_in_another_case_is_refused(logged_in, mailoutbox):
    _invite(logged_in, "newbie@example.com")
    response = _invite(logged_in, "NewBie@Example.COM")
    body = response.content.decode()
    assert response.status_code == 400 and "was invited already" in body and "revoke that invitation first" in body
    assert Invitation.objects.count() == 1 and len(mailoutbox) == 1


def test_the_database_refuses_two_open_invitations_to_one_address(team, user):
    Invitation.objects.create(team=team, email="a@example.com", token="t1", invited_by=user)
    with pytest.raises(IntegrityError), transaction.atomic():
        Invitation.objects.create(team=team, email="A@EXAMPLE.COM", token="t2", invited_by=user)
    # Accepted ones and other teams' do not count.
    Invitation.objects.filter(token="t1").update(accepted_at=timezone.now())
    Invitation.objects.create(team=team, email="A@EXAMPLE.COM", token="t3", invited_by=user)


def test_an_expired_invitation_makes_way_for_a_new_one(logged_in, mailoutbox):
    _invite(logged_in, "late@example.com")
    Invitation.objects.update(created_at=timezone.now() - timedelta(days=8))
    old_link = _link(mailoutbox)
    assert _invite(logged_in, "late@example.com").status_code == 302
    assert Invitation.objects.count() == 1 and _link(mailoutbox) != old_link


def test_an_admin_invites_members_and_admins_but_not_owners(as_admin, mailoutbox):
    form = as_admin.get(reverse("team-members")).content.decode()
    assert 'value="admin"' in form and 'value="owner"' not in form
    response = _invite(as_admin, "boss@example.com", role="owner")
    assert response.status_code == 400 and not Invitation.objects.exists()
    assert _invite(as_admin, "helper@example.com", role="admin").status_code == 302
    assert Invitation.objects.get().role == "admin"


def test_the_service_also_refuses_an_admin_inviting_an_owner(team, team_admin):
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        invitation_create(team=team, email="boss@example.com", role="owner", invited_by=team_admin, accept_url=str)
    assert not Invitation.objects.exists()


def test_an_owner_invites_an_owner(logged_in, team):
    assert _invite(logged_in, "partner@example.com", role="owner").status_code == 302
    assert Invitation.objects.get(team=team).role == "owner"


def test_the_invite_form_offers_roles_from_the_least_power_up(logged_in):
    page = logged_in.get(reverse("team-members")).content.decode()
    offered = re.findall(r'<option value="(member|admin|owner)"', page.split('name="email"')[1])
    assert offered[:3] == ["member", "admin", "owner"]


def test_a_member_cannot_invite(as_member, mailoutbox):
    response = _invite(as_member, "friend@example.com")
    assert response.status_code == 403 and not Invitation.objects.exists() and mailoutbox == []


def test_an_owner_revokes_an_invitation_and_its_link_stops_working(logged_in, mailoutbox):
    _invite(logged_in, "newbie@example.com")
    link = _link(mailoutbox)
    invitation = Invitation.objects.get()
    response = logged_in.post(reverse("team-invitation-revoke", args=[invitation.pk]), follow=True)
    assert "The invitation to newbie@example.com was revoked" in response.content.decode()
    assert not Invitation.objects.exists()
    assert Client().get(link).status_code == 404


def test_an_admin_revokes_an_invitation(as_admin, team, user):
    invitation = Invitation.objects.create(team=team, email="x@example.com", token="tok", invited_by=user)
    assert as_admin.post(reverse("team-invitation-revoke", args=[invitation.pk])).status_code == 302
    assert not Invitation.objects.exists()


def test_a_member_cannot_revoke_an_invitation(as_member, team, user):
    invitation = Invitation.objects.create(team=team, email="x@example.com", token="tok", invited_by=user)
    assert as_member.post(reverse("team-invitation-revoke", args=[invitation.pk])).status_code == 403
    assert Invitation.objects.filter(pk=invitation.pk).exists()


def test_another_teams_owner_cannot_revoke_an_invitation(client, outsider, team, user):
    invitation = Invitation.objects.create(team=team, email="x@example.com", token="tok", invited_by=user)
    client.force_login(outsider)
    assert client.post(reverse("team-invitation-revoke", args=[invitation.pk])).status_code == 404
    assert Invitation.objects.filter(pk=invitation.pk).exists()


def test_the_team_page_never_shows_an_invitation_token(logged_in, client, member, mailoutbox):
    _invite(logged_in, "newbie@example.com", role="admin")
    token = Invitation.objects.get().token
    body = logged_in.get(reverse("team-members")).content.decode()
    assert "newbie@example.com" in body and token not in body
    client.force_login(member)
    body = client.get(reverse("team-members")).content.decode()
    assert "newbie@example.com" in body and token not in body and "/invitations/" not in body


def test_the_admin_site_never_shows_an_invitation_token(admin_client, team, user):
    invitation = Invitation.objects.create(team=team, email="x@example.com", token="secret-token-x", invited_by=user)
    body = admin_client.get(reverse("admin:accounts_invitation_change", args=[invitation.pk])).content.decode()
    assert "x@example.com" in body and "secret-token-x" not in body


def test_an_invitation_for_someone_already_in_the_team_says_so(logged_in, team, user):
    invitation = Invitation.objects.create(team=team, email="owner@acme.test", token="tok-own", invited_by=user)
    body = logged_in.get(reverse("invitation", args=[invitation.token])).content.decode()
    assert "You are a member of Acme already" in body
