"""Owner / admin / member: only owners and admins change endpoints, secrets, event settings, API keys and
sending; members see those pages read-only. One test per admin-only action that a member gets 403 and
nothing changes (healthchecks' `test_it_requires_rw_access`), and that an admin (not only the owner) may."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import SenderDomain
from accounts.services.senders import sender_domain_add
from api.models import ApiKey
from api.services import api_key_create
from conftest import SECRET
from webhooks.models import Delivery, Endpoint, EventSetting
from webhooks.stripe_events import SUPPORTED_EVENTS

pytestmark = pytest.mark.django_db

NOTE = "Only owners and admins can change this."


def _forbidden(response) -> bool:
    return response.status_code == 403 and NOTE in response.content.decode()


# --- Settings → Stripe --------------------------------------------------------------------------


def test_a_member_cannot_create_an_endpoint(as_member, team):
    assert _forbidden(as_member.get(reverse("webhook-settings:new")))
    assert _forbidden(as_member.post(reverse("webhook-settings:new"), {"name": "Sneaky", "mode": "live"}))
    assert not Endpoint.objects.filter(team=team).exists()


def test_an_admin_can_create_an_endpoint(as_admin, team):
    response = as_admin.post(reverse("webhook-settings:new"), {"name": "Main account", "mode": "live"})
    assert response.status_code == 302
    assert Endpoint.objects.get(team=team).name == "Main account"


def test_a_member_cannot_save_the_signing_secret(as_member, endpoint):
    response = as_member.post(reverse("webhook-settings:secret", args=[endpoint.pk]), {"secret": "whsec_mine_1234"})
    assert _forbidden(response)
    endpoint.refresh_from_db()
    assert endpoint.signing_secret == SECRET


def test_an_admin_can_save_the_signing_secret(as_admin, endpoint):
    response = as_admin.post(reverse("webhook-settings:secret", args=[endpoint.pk]), {"secret": "whsec_new_98765"})
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.signing_secret == "whsec_new_98765"


def test_a_member_cannot_save_event_settings(as_member, endpoint):
    response = as_member.post(reverse("webhook-settings:events", args=[endpoint.pk]), {"invoice_paid_trigger": "x"})
    assert _forbidden(response)
    setting = EventSetting.objects.get(endpoint=endpoint, event_type="invoice.payment_failed")
    assert setting.enabled and setting.trigger_event_name == "failedPayment"
    assert EventSetting.objects.filter(endpoint=endpoint, enabled=True).count() == len(SUPPORTED_EVENTS)


def test_an_admin_can_save_event_settings(as_admin, endpoint):
    data = {f"{s.event_type.replace('.', '_')}_enabled": "on" for s in endpoint.event_settings.all()}
    data["invoice_paid_trigger"] = "successfulPayment"
    assert as_admin.post(reverse("webhook-settings:events", args=[endpoint.pk]), data).status_code == 302
    assert EventSetting.objects.get(endpoint=endpoint, event_type="invoice.paid").trigger_event_name == (
        "successfulPayment"
    )


def test_a_member_cannot_disable_an_endpoint(as_member, endpoint):
    assert _forbidden(as_member.post(reverse("webhook-settings:toggle", args=[endpoint.pk]), {"enabled": "no"}))
    endpoint.refresh_from_db()
    assert endpoint.enabled


def test_a_member_cannot_enable_an_endpoint(as_member, endpoint):
    Endpoint.objects.filter(pk=endpoint.pk).update(enabled=False)
    assert _forbidden(as_member.post(reverse("webhook-settings:toggle", args=[endpoint.pk]), {"enabled": "yes"}))
    endpoint.refresh_from_db()
    assert not endpoint.enabled


def test_an_admin_can_disable_an_endpoint(as_admin, endpoint):
    assert as_admin.post(reverse("webhook-settings:toggle", args=[endpoint.pk]), {"enabled": "no"}).status_code == 302
    endpoint.refresh_from_db()
    assert not endpoint.enabled


def test_a_member_cannot_open_the_delete_confirmation_of_an_endpoint(as_member, endpoint):
    assert _forbidden(as_member.get(reverse("webhook-settings:delete", args=[endpoint.pk])))


def test_a_member_cannot_delete_an_endpoint(as_member, endpoint):
    assert _forbidden(as_member.post(reverse("webhook-settings:delete", args=[endpoint.pk])))
    assert Endpoint.objects.filter(pk=endpoint.pk).exists()


def test_an_admin_can_delete_an_endpoint(as_admin, endpoint):
    assert "Delete endpoint" in as_admin.get(reverse("webhook-settings:delete", args=[endpoint.pk])).content.decode()
    assert as_admin.post(reverse("webhook-settings:delete", args=[endpoint.pk])).status_code == 302
    assert not Endpoint.objects.filter(pk=endpoint.pk).exists()


def test_a_member_may_send_a_test_event(as_member, member, endpoint):
    """It changes no setting: it posts a signed sample (to the member's own address) through the
    endpoint, as "Send a test to me" in the loop editor does."""
    response = as_member.post(reverse("webhook-settings:test", args=[endpoint.pk, "invoice.paid"]))
    assert response.status_code == 302 and "?test=" in response["Location"]
    assert Delivery.objects.filter(endpoint=endpoint).count() == 1


def test_a_member_sees_the_endpoint_read_only(as_member, endpoint):
    body = as_member.get(reverse("webhook-settings:detail", args=[endpoint.pk])).content.decode()
    assert NOTE in body and endpoint.secret_hint in body and "failedPayment" in body
    assert "Save secret" not in body and "Save event settings" not in body
    assert reverse("webhook-settings:toggle", args=[endpoint.pk]) not in body
    assert reverse("webhook-settings:delete", args=[endpoint.pk]) not in body
    assert "Send test event" in body
    listing = as_member.get(reverse("webhook-settings:list")).content.decode()
    assert endpoint.name in listing and reverse("webhook-settings:new") not in listing


def test_an_admin_sees_the_endpoint_forms(as_admin, endpoint):
    body = as_admin.get(reverse("webhook-settings:detail", args=[endpoint.pk])).content.decode()
    assert NOTE not in body and "Save secret" in body and "Save event settings" in body


# --- Settings → API -----------------------------------------------------------------------------


def test_a_member_cannot_create_an_api_key(as_member, team):
    assert _forbidden(as_member.post(reverse("api-settings:new"), {"name": "Mine"}))
    assert not ApiKey.objects.filter(team=team).exists()


def test_an_admin_can_create_an_api_key(as_admin, team, team_admin):
    response = as_admin.post(reverse("api-settings:new"), {"name": "Zapier"})
    assert response.status_code == 200 and 'id="api-key"' in response.content.decode()
    assert ApiKey.objects.get(team=team).created_by == team_admin


def test_a_member_cannot_open_the_revoke_confirmation_of_an_api_key(as_member, team):
    key = api_key_create(team=team, name="Backend").api_key
    assert _forbidden(as_member.get(reverse("api-settings:revoke", args=[key.pk])))


def test_a_member_cannot_revoke_an_api_key(as_member, team):
    key = api_key_create(team=team, name="Backend").api_key
    assert _forbidden(as_member.post(reverse("api-settings:revoke", args=[key.pk])))
    key.refresh_from_db()
    assert key.active


def test_an_admin_can_revoke_an_api_key(as_admin, team):
    key = api_key_create(team=team, name="Backend").api_key
    assert as_admin.post(reverse("api-settings:revoke", args=[key.pk])).status_code == 302
    key.refresh_from_db()
    assert not key.active


def test_a_member_sees_the_api_keys_read_only(as_member, team):
    key = api_key_create(team=team, name="Backend").api_key
    body = as_member.get(reverse("api-settings:list")).content.decode()
    assert "Backend" in body and f"{key.prefix}…" in body and NOTE in body
    assert "Create key" not in body and reverse("api-settings:revoke", args=[key.pk]) not in body


# --- the checks themselves ----------------------------------------------------------------------


def test_the_403_page_says_why_and_who_can(as_member):
    response = as_member.get(reverse("webhook-settings:new"))
    body = response.content.decode()
    assert response.status_code == 403 and "You can’t do that here" in body
    assert "Your role in Acme is member" in body and 'href="/"' in body  # the site's own page, with its nav


def test_a_user_without_a_team_is_sent_to_the_dashboard_not_a_500(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("loner", "loner@example.com"))
    response = client.post(reverse("api-settings:new"), {"name": "x"})
    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert not ApiKey.objects.exists()


def test_admin_only_pages_send_a_visitor_to_log_in(client, endpoint):
    response = client.post(reverse("webhook-settings:secret", args=[endpoint.pk]), {"secret": "whsec_x_1234567"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_the_role_is_the_one_in_the_current_team(client, member, other_team, endpoint, make_endpoint):
    """Owner of one team, member of another: rights follow the team switcher, not the best role."""
    from accounts.services import membership_add

    membership_add(team=other_team, user=member, role="owner")
    theirs = make_endpoint(other_team)
    client.force_login(member)
    client.post(reverse("team-switch"), {"team": other_team.pk})
    assert client.post(reverse("webhook-settings:toggle", args=[theirs.pk]), {"enabled": "no"}).status_code == 302
    client.post(reverse("team-switch"), {"team": endpoint.team_id})
    assert client.post(reverse("webhook-settings:toggle", args=[endpoint.pk]), {"enabled": "no"}).status_code == 403


def test_an_outsider_still_gets_404_for_another_teams_endpoint(client, outsider, endpoint):
    """The role check runs first, but an owner of another team passes it and then finds nothing."""
    client.force_login(outsider)
    assert client.post(reverse("webhook-settings:delete", args=[endpoint.pk])).status_code == 404
    assert Endpoint.objects.filter(pk=endpoint.pk).exists()


def test_a_member_cannot_add_a_sender_domain(as_member, team):
    assert _forbidden(as_member.post(reverse("sending-settings:new"), {"domain": "acme.com"}))
    assert not SenderDomain.objects.filter(team=team).exists()


def test_a_member_cannot_verify_a_sender_domain(as_member, team):
    domain = sender_domain_add(team=team, domain="acme.com")
    assert _forbidden(as_member.post(reverse("sending-settings:verify", args=[domain.pk])))
    domain.refresh_from_db()
    assert domain.last_checked_at is None and domain.verified_at is None


def test_a_member_cannot_open_the_delete_confirmation_of_a_sender_domain(as_member, team):
    domain = sender_domain_add(team=team, domain="acme.com")
    assert _forbidden(as_member.get(reverse("sending-settings:delete", args=[domain.pk])))


def test_a_member_cannot_delete_a_sender_domain(as_member, team):
    domain = sender_domain_add(team=team, domain="acme.com")
    assert _forbidden(as_member.post(reverse("sending-settings:delete", args=[domain.pk])))
    assert SenderDomain.objects.filter(pk=domain.pk).exists()


def test_a_member_sees_the_sending_page_read_only(as_member, team):
    domain = sender_domain_add(team=team, domain="acme.com")
    body = as_member.get(reverse("sending-settings:list")).content.decode()
    assert "acme.com" in body and domain.txt_value in body and NOTE in body
    assert "Add domain" not in body and reverse("sending-settings:delete", args=[domain.pk]) not in body


def test_csrf_is_checked_on_the_new_forms(user, team):
    domain = sender_domain_add(team=team, domain="acme.com")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(reverse("sending-settings:new"), {"domain": "x.com"}).status_code == 403
    assert strict.post(reverse("sending-settings:delete", args=[domain.pk])).status_code == 403
    assert strict.post(reverse("team-members"), {"email": "a@b.com"}).status_code == 403
    assert SenderDomain.objects.filter(team=team).count() == 1 and not team.invitations.exists()
