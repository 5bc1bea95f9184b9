"""Settings → Sending: add a domain, publish its TXT record, verify it against a real (local) DNS server."""

import pytest
from django.urls import reverse

from accounts.models import SenderDomain
from accounts.services.senders import domain_normalize, sender_domain_add, sender_domain_verify

pytestmark = pytest.mark.django_db


def test_add_a_domain_and_see_the_txt_record_to_publish(logged_in, team):
    response = logged_in.post(reverse("sending-settings:new"), {"domain": "  Acme.COM. "}, follow=True)
    domain = SenderDomain.objects.get(team=team)
    body = response.content.decode()
    assert domain.domain == "acme.com" and domain.verified_at is None and len(domain.token) == 32
    assert "acme.com added" in body and "Not verified" in body
    assert f"loopsync-verification={domain.token}" in body and "TXT" in body


def test_the_page_shows_the_default_sender_and_the_operators_domains(logged_in, settings):
    settings.DEFAULT_FROM_EMAIL = "LoopSync <noreply@loopsync.example>"
    settings.ALLOWED_SENDER_DOMAINS = ["mail.loopsync.example"]
    body = logged_in.get(reverse("sending-settings:list")).content.decode()
    assert "noreply@loopsync.example" in body and "mail.loopsync.example" in body
    assert 'aria-current="page">Sending</a>' in body and 'aria-current="page">Settings</a>' in body


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("ada@acme.com", "Enter the domain only"),
        ("https://acme.com", "Enter the domain only"),
        ("localhost", "is not a domain name"),
        ("acme..com", "is not a domain name"),
        ("-acme.com", "is not a domain name"),
        ("10.0.0.1", "not an IP address"),
        ("", "This field is required."),
    ],
)
def test_a_bad_domain_is_refused_with_the_form_kept(logged_in, team, typed, message):
    response = logged_in.post(reverse("sending-settings:new"), {"domain": typed})
    assert response.status_code == 400 and message in response.content.decode()
    assert not SenderDomain.objects.exists()


def test_a_refusal_is_shown_in_view_and_a_success_at_the_top(logged_in, team):
    """The add form is below the domains: it posts to its own anchor, so the browser shows the refused
    form and its message rather than the top of the page; a success goes back to the top."""
    action = f'action="{reverse("sending-settings:new")}#new-domain"'
    assert action in logged_in.get(reverse("sending-settings:list")).content.decode()
    refused = logged_in.post(reverse("sending-settings:new"), {"domain": "localhost"}).content.decode()
    assert 'id="new-domain"' in refused and action in refused
    added = logged_in.post(reverse("sending-settings:new"), {"domain": "acme.com"})
    assert added["Location"] == reverse("sending-settings:list") + "#top"


def test_an_international_domain_is_stored_in_its_ascii_form():
    assert domain_normalize("Bücher.example") == "xn--bcher-kva.example"


def test_the_same_domain_twice_is_refused(logged_in, team):
    sender_domain_add(team=team, domain="acme.com")
    response = logged_in.post(reverse("sending-settings:new"), {"domain": "ACME.com"})
    assert response.status_code == 400 and "acme.com is added already" in response.content.decode()
    assert SenderDomain.objects.count() == 1


def test_two_teams_may_each_verify_the_same_domain_with_their_own_token(team, other_team):
    ours, theirs = (
        sender_domain_add(team=team, domain="acme.com"),
        sender_domain_add(team=other_team, domain="acme.com"),
    )
    assert ours.token != theirs.token


def test_a_domain_the_operator_allows_needs_no_verifying(logged_in, settings):
    settings.ALLOWED_SENDER_DOMAINS = ["shared.example"]
    response = logged_in.post(reverse("sending-settings:new"), {"domain": "shared.example"})
    body = response.content.decode()
    assert response.status_code == 400 and "ALLOWED_SENDER_DOMAINS" in body and "nothing to verify" in body


def test_the_number_of_domains_is_capped_and_the_message_names_the_setting(logged_in, team, settings):
    settings.SENDER_DOMAINS_MAX = 2
    sender_domain_add(team=team, domain="a.example")
    sender_domain_add(team=team, domain="b.example")
    response = logged_in.post(reverse("sending-settings:new"), {"domain": "c.example"})
    body = response.content.decode()
    assert response.status_code == 400 and "at most 2 sender domains (SENDER_DOMAINS_MAX)" in body
    assert SenderDomain.objects.count() == 2


def _verify(client, domain, capture, worker):
    """Press Verify, then let a worker run the check it asked for (test_sender_domain_checks.py)."""
    with capture() as callbacks:
        client.post(reverse("sending-settings:verify", args=[domain.pk]))
    worker(callbacks)
    return client.get(reverse("sending-settings:list"))


def test_verify_finds_the_txt_record_among_others(
    logged_in, team, dns_server, django_capture_on_commit_callbacks, worker
):
    domain = sender_domain_add(team=team, domain="acme.com")
    dns_server.records["acme.com"] = ["v=spf1 include:_spf.example -all", domain.txt_value]
    response = _verify(logged_in, domain, django_capture_on_commit_callbacks, worker)
    domain.refresh_from_db()
    assert domain.verified_at is not None and domain.last_error == ""
    assert "Verified" in response.content.decode() and "Not verified" not in response.content.decode()
    assert dns_server.queries == ["acme.com"]


def test_a_txt_record_split_in_several_strings_counts(team, dns_server):
    domain = sender_domain_add(team=team, domain="acme.com")
    dns_server.records["acme.com"] = [(domain.txt_value[:10], domain.txt_value[10:])]  # "loopsync-v" "erific…"
    assert sender_domain_verify(sender_domain=domain).verified_at is not None


def test_verify_without_the_record_says_what_to_publish(
    logged_in, team, dns_server, django_capture_on_commit_callbacks, worker
):
    domain = sender_domain_add(team=team, domain="acme.com")
    dns_server.records["acme.com"] = ["v=spf1 -all", "loopsync-verification=someone-elses-token"]
    response = _verify(logged_in, domain, django_capture_on_commit_callbacks, worker)
    body = response.content.decode()
    domain.refresh_from_db()
    assert domain.verified_at is None
    assert f"No TXT record {domain.txt_value} on acme.com yet (it has 2 other TXT records)" in body
    assert domain.last_checked_at is not None and "try again in a few minutes" in domain.last_error


def test_verify_a_domain_that_does_not_exist(team, dns_server):
    domain = sender_domain_add(team=team, domain="nowhere.example")
    assert sender_domain_verify(sender_domain=domain).last_error == "nowhere.example does not exist in DNS."
    domain.refresh_from_db()
    assert domain.verified_at is None


def test_verify_a_domain_without_any_txt_record(team, dns_server):
    dns_server.records["bare.example"] = []
    domain = sender_domain_verify(sender_domain=sender_domain_add(team=team, domain="bare.example"))
    assert domain.verified_at is None and domain.last_error.startswith(f"No TXT record {domain.txt_value}")


def test_a_dns_timeout_is_reported_with_its_setting_and_never_hangs(team, dns_server, settings):
    settings.SENDER_DOMAIN_DNS_TIMEOUT = 0.3
    dns_server.silent.add("slow.example")
    domain = sender_domain_verify(sender_domain=sender_domain_add(team=team, domain="slow.example"))
    assert domain.verified_at is None
    assert "took longer than 0.3 s (SENDER_DOMAIN_DNS_TIMEOUT)" in domain.last_error


def test_a_verified_domain_stays_verified_when_a_later_check_fails(team, dns_server):
    domain = sender_domain_add(team=team, domain="acme.com")
    dns_server.records["acme.com"] = [domain.txt_value]
    verified_at = sender_domain_verify(sender_domain=domain).verified_at
    dns_server.records.pop("acme.com")
    domain = sender_domain_verify(sender_domain=domain)
    domain.refresh_from_db()
    assert domain.verified_at == verified_at and "does not exist" in domain.last_error


def test_delete_asks_first(logged_in, team):
    domain = sender_domain_add(team=team, domain="acme.com")
    url = reverse("sending-settings:delete", args=[domain.pk])
    page = logged_in.get(url).content.decode()
    assert "Delete acme.com?" in page and "default sender" in page
    assert SenderDomain.objects.filter(pk=domain.pk).exists()
    assert logged_in.post(url).status_code == 302
    assert not SenderDomain.objects.filter(pk=domain.pk).exists()


def test_an_admin_adds_verifies_and_deletes_a_domain(
    as_admin, team, dns_server, django_capture_on_commit_callbacks, worker
):
    as_admin.post(reverse("sending-settings:new"), {"domain": "acme.com"})
    domain = SenderDomain.objects.get(team=team)
    dns_server.records["acme.com"] = [domain.txt_value]
    _verify(as_admin, domain, django_capture_on_commit_callbacks, worker)
    domain.refresh_from_db()
    assert domain.verified_at is not None
    as_admin.post(reverse("sending-settings:delete", args=[domain.pk]))
    assert not SenderDomain.objects.exists()


def test_the_list_shows_only_this_teams_domains(logged_in, other_team):
    sender_domain_add(team=other_team, domain="globex.example")
    assert "globex.example" not in logged_in.get(reverse("sending-settings:list")).content.decode()


@pytest.mark.parametrize(("name", "method"), [("verify", "post"), ("delete", "get"), ("delete", "post")])
def test_another_teams_owner_gets_404(client, outsider, team, name, method):
    domain = sender_domain_add(team=team, domain="acme.com")
    client.force_login(outsider)
    assert getattr(client, method)(reverse(f"sending-settings:{name}", args=[domain.pk])).status_code == 404
    domain.refresh_from_db()
    assert domain.last_checked_at is None


def test_the_page_needs_login(client):
    response = client.get(reverse("sending-settings:list"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_the_database_keeps_domains_lower_case(team):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        SenderDomain.objects.create(team=team, domain="Acme.com", token="x")
