"""The Team page: owners change roles and remove anyone, admins remove plain members, everyone can leave,
and a team always keeps an owner."""

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from accounts.models import Membership
from accounts.services import (
    invitation_create,
    invitation_revoke,
    invitations_open,
    membership_add,
    membership_remove,
    membership_role_set,
)

pytestmark = pytest.mark.django_db


def _membership(user, team) -> Membership:
    return Membership.objects.get(user=user, team=team)


def test_an_owner_removes_a_member_after_confirming(logged_in, member, team):
    url = reverse("team-member-remove", args=[_membership(member, team).pk])
    page = logged_in.get(url).content.decode()
    assert "Remove member from Acme?" in page and 'name="csrfmiddlewaretoken"' in page
    assert Membership.objects.filter(user=member, team=team).exists()  # the GET changes nothing
    response = logged_in.post(url, follow=True)
    assert "member was removed from Acme" in response.content.decode()
    assert not Membership.objects.filter(user=member, team=team).exists()


def test_a_removed_member_loses_the_team_at_once(logged_in, member, team):
    from django.test import Client

    theirs = Client()
    theirs.force_login(member)
    assert theirs.get(reverse("home")).context["team"] == team
    logged_in.post(reverse("team-member-remove", args=[_membership(member, team).pk]))
    assert not theirs.get(reverse("home")).context["team"]
    assert theirs.get(reverse("contacts:list")).status_code in (200, 302)  # nothing of Acme's, no error


def test_an_owner_removes_an_admin(logged_in, team_admin, team):
    logged_in.post(reverse("team-member-remove", args=[_membership(team_admin, team).pk]))
    assert not Membership.objects.filter(user=team_admin, team=team).exists()


def test_an_admin_removes_a_plain_member(as_admin, member, team):
    assert as_admin.post(reverse("team-member-remove", args=[_membership(member, team).pk])).status_code == 302
    assert not Membership.objects.filter(user=member, team=team).exists()


def test_an_admin_cannot_remove_an_owner(as_admin, user, team):
    response = as_admin.post(reverse("team-member-remove", args=[_membership(user, team).pk]))
    assert response.status_code == 403
    assert Membership.objects.filter(user=user, team=team, role="owner").exists()


def test_an_admin_cannot_remove_another_admin(as_admin, team):
    other = get_user_model().objects.create_user("admin2", "admin2@acme.test")
    membership = membership_add(team=team, user=other, role="admin")
    assert as_admin.post(reverse("team-member-remove", args=[membership.pk])).status_code == 403
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_a_member_cannot_remove_a_member(as_member, team):
    other = get_user_model().objects.create_user("member2", "member2@acme.test")
    membership = membership_add(team=team, user=other)
    assert as_member.get(reverse("team-member-remove", args=[membership.pk])).status_code == 403
    assert as_member.post(reverse("team-member-remove", args=[membership.pk])).status_code == 403
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_a_member_can_leave_the_team(as_member, member, team):
    url = reverse("team-member-remove", args=[_membership(member, team).pk])
    assert "Leave Acme?" in as_member.get(url).content.decode()
    response = as_member.post(url)
    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert not Membership.objects.filter(user=member, team=team).exists()


def test_the_last_owner_cannot_leave(logged_in, user, team, member):
    response = logged_in.post(reverse("team-member-remove", args=[_membership(user, team).pk]), follow=True)
    assert "the only owner of Acme: make someone else an owner first" in response.content.decode()
    assert _membership(user, team).role == "owner"


def test_an_owner_can_leave_when_another_owner_stays(logged_in, user, team, member):
    membership_role_set(membership=_membership(member, team), role="owner", actor=_membership(user, team))
    logged_in.post(reverse("team-member-remove", args=[_membership(user, team).pk]))
    assert list(team.memberships.values_list("user__username", "role")) == [("member", "owner")]


def test_an_owner_changes_a_role(logged_in, member, team):
    response = logged_in.post(reverse("team-member-role", args=[_membership(member, team).pk]), {"role": "admin"})
    assert response.status_code == 302
    assert _membership(member, team).role == "admin"
    assert "member is now an admin." in logged_in.get(reverse("team-members")).content.decode()


def test_an_owner_makes_another_owner_then_steps_down(logged_in, user, member, team):
    logged_in.post(reverse("team-member-role", args=[_membership(member, team).pk]), {"role": "owner"})
    logged_in.post(reverse("team-member-role", args=[_membership(user, team).pk]), {"role": "admin"})
    assert (_membership(member, team).role, _membership(user, team).role) == ("owner", "admin")


def test_the_last_owner_cannot_demote_themselves(logged_in, user, team):
    response = logged_in.post(
        reverse("team-member-role", args=[_membership(user, team).pk]), {"role": "member"}, follow=True
    )
    assert "the only owner of Acme" in response.content.decode()
    assert _membership(user, team).role == "owner"


def test_an_admin_cannot_change_roles(as_admin, member, team_admin, team):
    for membership, role in [(_membership(member, team), "admin"), (_membership(team_admin, team), "owner")]:
        response = as_admin.post(reverse("team-member-role", args=[membership.pk]), {"role": role})
        assert response.status_code == 403 and "Only owners can change this." in response.content.decode()
    assert (_membership(member, team).role, _membership(team_admin, team).role) == ("member", "admin")


def test_a_member_cannot_change_roles(as_member, member, team):
    response = as_member.post(reverse("team-member-role", args=[_membership(member, team).pk]), {"role": "owner"})
    assert response.status_code == 403
    assert _membership(member, team).role == "member"


def test_an_unknown_role_changes_nothing(logged_in, member, team):
    response = logged_in.post(
        reverse("team-member-role", args=[_membership(member, team).pk]), {"role": "god"}, follow=True
    )
    assert response.status_code == 200 and "Choose owner, admin or member." in response.content.decode()
    assert _membership(member, team).role == "member"


@pytest.mark.parametrize(
    ("name", "method"), [("team-member-remove", "get"), ("team-member-remove", "post"), ("team-member-role", "post")]
)
def test_another_teams_owner_gets_404_for_a_membership(client, outsider, member, team, name, method):
    client.force_login(outsider)
    response = getattr(client, method)(reverse(name, args=[_membership(member, team).pk]), {"role": "owner"})
    assert response.status_code == 404
    assert _membership(member, team).role == "member"


def test_the_team_page_shows_role_controls_to_owners_only(client, logged_in, member, team_admin, team):
    owner_view = logged_in.get(reverse("team-members")).content.decode()
    # A select per member but the only owner (who can neither leave nor be demoted), and the invite form's.
    assert owner_view.count('name="role"') == 3 and "Leave team" not in owner_view
    assert "the only owner: make someone else an owner to change this" in owner_view
    client.force_login(team_admin)
    admin_view = client.get(reverse("team-members")).content.decode()
    assert reverse("team-member-role", args=[_membership(member, team).pk]) not in admin_view
    assert reverse("team-member-remove", args=[_membership(member, team).pk]) in admin_view
    client.force_login(member)
    member_view = client.get(reverse("team-members")).content.decode()
    assert "Only owners and admins can change this." in member_view and "Send invitation" not in member_view
    assert reverse("team-member-remove", args=[_membership(member, team).pk]) in member_view  # leave


# A request loads the actor's membership when it starts; another owner can change it before the service
# runs. The services decide with the role read under the team's lock, never with the one passed in.


def _owner(team, name: str) -> Membership:
    user = get_user_model().objects.create_user(name, f"{name}@acme.test")
    return membership_add(team=team, user=user, role="owner")


def test_an_owner_demoted_meanwhile_cannot_demote_another_owner(user, team):
    b, c = _owner(team, "bea"), _owner(team, "cem")
    b_as_loaded = _membership(b.user, team)  # B's request started while B was an owner
    membership_role_set(membership=_membership(b.user, team), role="member", actor=_membership(user, team))
    with pytest.raises(PermissionDenied):
        membership_role_set(membership=_membership(c.user, team), role="member", actor=b_as_loaded)
    assert _membership(c.user, team).role == "owner"


def test_an_owner_demoted_meanwhile_cannot_remove_another_owner(user, team):
    b, c = _owner(team, "bea"), _owner(team, "cem")
    b_as_loaded = _membership(b.user, team)
    membership_role_set(membership=_membership(b.user, team), role="admin", actor=_membership(user, team))
    with pytest.raises(PermissionDenied):
        membership_remove(membership=_membership(c.user, team), actor=b_as_loaded)
    assert _membership(c.user, team).role == "owner"


def test_an_admin_demoted_meanwhile_cannot_remove_a_member(user, team_admin, member, team):
    admin_as_loaded = _membership(team_admin, team)
    membership_role_set(membership=_membership(team_admin, team), role="member", actor=_membership(user, team))
    with pytest.raises(PermissionDenied):
        membership_remove(membership=_membership(member, team), actor=admin_as_loaded)
    assert Membership.objects.filter(user=member, team=team).exists()


def test_an_owner_removed_meanwhile_cannot_change_roles(user, member, team):
    b = _owner(team, "bea")
    b_as_loaded = _membership(b.user, team)
    membership_remove(membership=_membership(b.user, team), actor=_membership(user, team))
    with pytest.raises(PermissionDenied):
        membership_role_set(membership=_membership(member, team), role="owner", actor=b_as_loaded)
    assert _membership(member, team).role == "member"


def test_an_owner_promoted_meanwhile_may_change_roles(user, member, team_admin, team):
    """The fresh role decides both ways: an admin made owner a moment ago is an owner."""
    admin_as_loaded = _membership(team_admin, team)
    membership_role_set(membership=_membership(team_admin, team), role="owner", actor=_membership(user, team))
    membership_role_set(membership=_membership(member, team), role="admin", actor=admin_as_loaded)
    assert _membership(member, team).role == "admin"


def test_an_admin_demoted_meanwhile_cannot_revoke_an_invitation(user, team_admin, team):
    invitation = invitation_create(team=team, email="new@example.com", invited_by=user, accept_url=str)
    admin_as_loaded = _membership(team_admin, team)
    membership_role_set(membership=_membership(team_admin, team), role="member", actor=_membership(user, team))
    with pytest.raises(PermissionDenied):
        invitation_revoke(invitation=invitation, actor=admin_as_loaded)
    assert invitations_open(team=team).filter(pk=invitation.pk).exists()


def test_an_admin_revokes_an_invitation_through_the_service(user, team_admin, team):
    invitation = invitation_create(team=team, email="new@example.com", invited_by=user, accept_url=str)
    invitation_revoke(invitation=invitation, actor=_membership(team_admin, team))
    assert not invitations_open(team=team).exists()


def test_a_user_without_a_team_is_sent_to_the_dashboard_which_offers_a_new_team(client, db):
    from django.contrib.auth import get_user_model

    from accounts.models import Membership

    loner = get_user_model().objects.create_user("loner", "loner@example.com")
    client.force_login(loner)
    for url in ["/audience/", "/loops/", "/loops/new/", "/events/", "/settings/webhooks/stripe/", "/settings/api/",
                "/settings/sending/", "/team/"]:  # fmt: skip
        response = client.get(url)
        assert response.status_code == 302 and response["Location"] == "/", url
    home = client.get("/").content.decode()
    assert "You are not a member of any team" in home and 'action="/teams/new/"' in home
    response = client.post("/teams/new/", {"name": "Loner Inc"}, follow=True)
    assert "Loner Inc is ready" in response.content.decode()
    membership = Membership.objects.get(user=loner)
    assert (membership.team.name, membership.role) == ("Loner Inc", "owner")
    assert client.get("/audience/").status_code == 200
