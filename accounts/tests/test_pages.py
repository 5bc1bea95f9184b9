import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from accounts.models import Membership, Team
from accounts.services import membership_add

pytestmark = pytest.mark.django_db


def test_signup_creates_the_user_and_their_team_and_logs_in(client):
    response = client.post(
        reverse("signup"),
        {
            "username": "maria",
            "email": "maria@example.com",
            "team_name": "Maria's Shop",
            "password1": "a-long-pass-123",
            "password2": "a-long-pass-123",
        },
    )
    assert response.status_code == 302 and response["Location"] == reverse("home")
    membership = Membership.objects.get(user__username="maria")
    assert (membership.team.name, membership.role) == ("Maria's Shop", "owner")
    assert "Maria&#x27;s Shop" in client.get(reverse("home")).content.decode()


def test_signup_errors_keep_the_form_and_create_nothing(client, user):
    response = client.post(
        reverse("signup"),
        {
            "username": "x",
            "email": "owner@acme.test",
            "team_name": "T",
            "password1": "a-long-pass-123",
            "password2": "different-123",
        },
    )
    body = response.content.decode()
    assert response.status_code == 200 and "exists already" in body and 'value="T"' in body
    assert not get_user_model().objects.filter(username="x").exists() and not Team.objects.filter(name="T").exists()


def test_team_switch_changes_the_current_team(client, user, team, other_team):
    membership_add(team=other_team, user=user)
    client.force_login(user)
    assert client.get(reverse("home")).context["team"] == team
    response = client.post(reverse("team-switch"), {"team": other_team.pk, "next": "/audience/"})
    assert response["Location"] == "/audience/"
    assert client.get(reverse("home")).context["team"] == other_team


def test_team_switch_to_a_team_you_are_not_in_is_404(client, user, other_team):
    client.force_login(user)
    assert client.post(reverse("team-switch"), {"team": other_team.pk}).status_code == 404


def test_team_switch_never_redirects_off_site(client, user, team):
    client.force_login(user)
    response = client.post(reverse("team-switch"), {"team": team.pk, "next": "https://evil.example/"})
    assert response["Location"] == "/"


def test_password_reset_by_email_lets_the_user_choose_a_new_password(client, user, mailoutbox):
    import re

    response = client.post(reverse("password_reset"), {"email": "owner@acme.test"})
    assert response["Location"] == reverse("password_reset_done")
    [email] = mailoutbox
    link = re.search(r"https?://[^/]+(/password-reset/\S+/)", email.body).group(1)
    form_page = client.get(link, follow=True)
    client.post(
        form_page.redirect_chain[-1][0], {"new_password1": "brand-new-pass-42", "new_password2": "brand-new-pass-42"}
    )
    user.refresh_from_db()
    assert user.check_password("brand-new-pass-42")


def test_password_reset_does_not_tell_whether_an_email_has_an_account(client, mailoutbox):
    response = client.post(reverse("password_reset"), {"email": "nobody@example.com"})
    assert response["Location"] == reverse("password_reset_done") and mailoutbox == []


def test_invite_by_email_then_join_with_the_link(client, user, team, mailoutbox):
    import re

    client.force_login(user)
    client.post(reverse("team-members"), {"email": "newbie@example.com"})
    [email] = mailoutbox
    assert email.to == ["newbie@example.com"] and "Acme" in email.subject
    link = re.search(r"https?://[^/]+(/invitations/\S+/)", email.body).group(1)
    newbie = get_user_model().objects.create_user("newbie", "newbie@example.com", "pw-newbie-123")
    client.force_login(newbie)
    assert "Join Acme" in client.get(link).content.decode()
    client.post(link)
    assert Membership.objects.filter(team=team, user=newbie, role="member").exists()
    assert client.get(link).status_code == 404  # used: nobody else joins with it


def test_a_forged_invitation_link_is_404(client, user):
    client.force_login(user)
    assert client.get(reverse("invitation", args=["not-a-token"])).status_code == 404


def test_team_page_lists_only_this_teams_members(client, user, outsider):
    client.force_login(user)
    body = client.get(reverse("team-members")).content.decode()
    assert "owner" in body and "outsider" not in body
