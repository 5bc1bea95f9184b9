"""Verify hands the DNS lookup to a worker: the request only claims a check (at most one per domain every
SENDER_DOMAIN_CHECK_INTERVAL seconds), and the page polls until the worker has recorded the outcome."""

import re
import time
from datetime import timedelta

import pytest
from django.urls import reverse

from accounts.models import SenderDomain
from accounts.services.senders import sender_domain_add

pytestmark = pytest.mark.django_db

CHECKING = "Checking…"


@pytest.fixture
def domain(team):
    return sender_domain_add(team=team, domain="acme.com")


@pytest.fixture
def press_verify(django_capture_on_commit_callbacks):
    """POST Verify; returns the page it leads to and what was left for after the commit (not run yet)."""

    def press(client, domain):
        with django_capture_on_commit_callbacks() as callbacks:
            response = client.post(reverse("sending-settings:verify", args=[domain.pk]), follow=True)
        return response, callbacks

    return press


def _status(client, domain, n: str | None = None):
    url = reverse("sending-settings:status", args=[domain.pk])
    return client.get(url if n is None else f"{url}?n={n}")


def test_verify_answers_without_asking_dns_even_when_the_nameserver_is_silent(
    logged_in, domain, dns_server, press_verify
):
    dns_server.silent.add("acme.com")
    response, callbacks = press_verify(logged_in, domain)
    body = response.content.decode()
    assert dns_server.queries == []  # nothing was resolved while the request ran
    assert response.status_code == 200 and CHECKING in body and "Checking acme.com" in body
    assert len(callbacks) == 1  # the check, enqueued once the claim commits
    domain.refresh_from_db()
    assert domain.check_requested_at is not None and domain.last_checked_at is None


@pytest.mark.parametrize(
    ("publish", "silent", "outcome"),
    [
        (True, False, "Verified"),
        (False, False, "No TXT record loopsync-verification="),
        (False, True, "took longer than 0.3 s (SENDER_DOMAIN_DNS_TIMEOUT)"),
    ],
    ids=["found", "missing", "timeout"],
)
def test_the_worker_checks_dns_and_the_polled_row_shows_the_outcome(
    logged_in, domain, dns_server, settings, press_verify, worker, publish, silent, outcome
):
    settings.SENDER_DOMAIN_DNS_TIMEOUT = 0.3
    dns_server.records["acme.com"] = ["v=spf1 -all"] + ([domain.txt_value] if publish else [])
    if silent:
        dns_server.silent.add("acme.com")
    _, callbacks = press_verify(logged_in, domain)
    assert CHECKING in _status(logged_in, domain).content.decode()
    worker(callbacks)
    assert "acme.com" in dns_server.queries
    row = _status(logged_in, domain, n="3").content.decode()
    assert outcome in row and CHECKING not in row and "hx-get" not in row
    domain.refresh_from_db()
    assert (domain.verified_at is not None) is publish and domain.last_checked_at is not None
    assert (domain.last_error == "") is publish and (outcome in domain.last_error) is not publish


@pytest.mark.parametrize("checked", [False, True], ids=["still-checking", "checked"])
def test_a_second_verify_within_the_interval_is_refused_and_enqueues_nothing(
    logged_in, domain, dns_server, settings, press_verify, worker, checked
):
    settings.SENDER_DOMAIN_CHECK_INTERVAL = 30
    _, callbacks = press_verify(logged_in, domain)
    if checked:
        worker(callbacks)
    response, again = press_verify(logged_in, domain)
    assert again == []
    message = re.search(
        r"acme\.com was checked less than 30 s ago \(SENDER_DOMAIN_CHECK_INTERVAL\); "
        r"try again in (\d+) s",
        response.content.decode(),
    )
    assert message and 1 <= int(message[1]) <= 30
    assert dns_server.queries == (["acme.com"] if checked else [])


def test_verify_is_accepted_again_once_the_interval_has_passed(logged_in, domain, settings, press_verify, worker):
    settings.SENDER_DOMAIN_CHECK_INTERVAL = 30
    _, callbacks = press_verify(logged_in, domain)
    worker(callbacks)
    SenderDomain.objects.update(check_requested_at=domain.created_at - timedelta(seconds=31))
    _, callbacks = press_verify(logged_in, domain)
    assert len(callbacks) == 1


def test_a_check_that_never_finished_can_be_asked_for_again(logged_in, domain, settings, press_verify):
    settings.SENDER_DOMAIN_CHECK_INTERVAL = 30
    press_verify(logged_in, domain)  # its task is lost: never run
    SenderDomain.objects.update(check_requested_at=domain.created_at - timedelta(seconds=31))
    page = logged_in.get(reverse("sending-settings:list")).content.decode()
    assert CHECKING not in page and "did not finish" in page
    assert reverse("sending-settings:verify", args=[domain.pk]) in page
    _, callbacks = press_verify(logged_in, domain)
    assert len(callbacks) == 1


def test_the_checking_row_polls_a_bounded_number_of_times(logged_in, domain, press_verify):
    press_verify(logged_in, domain)
    status = reverse("sending-settings:status", args=[domain.pk])
    page = logged_in.get(reverse("sending-settings:list")).content.decode()
    assert f'hx-get="{status}?n=1"' in page and 'hx-trigger="load delay:1s"' in page
    assert reverse("sending-settings:verify", args=[domain.pk]) not in page  # no second press while checking
    assert f'hx-get="{status}?n=60"' in _status(logged_in, domain, n="59").content.decode()
    last = _status(logged_in, domain, n="60").content.decode()
    assert "hx-get" not in last and CHECKING in last and "is a worker running?" in last
    assert f'hx-get="{status}?n=1"' in _status(logged_in, domain, n="x1").content.decode()  # junk counts as 0


def test_a_domain_not_being_checked_is_not_polled(logged_in, domain):
    assert "hx-get" not in logged_in.get(reverse("sending-settings:list")).content.decode()
    row = _status(logged_in, domain).content.decode()
    assert "Not verified" in row and "hx-get" not in row


def test_another_teams_user_gets_404_for_the_status(client, outsider, domain, press_verify, logged_in):
    press_verify(logged_in, domain)
    client.force_login(outsider)
    assert _status(client, domain).status_code == 404


def test_a_member_sees_the_status_but_cannot_verify(client, member, domain, press_verify):
    client.force_login(member)
    row = _status(client, domain)
    assert row.status_code == 200 and "Not verified" in row.content.decode()
    assert reverse("sending-settings:verify", args=[domain.pk]) not in row.content.decode()
    response, callbacks = press_verify(client, domain)
    assert response.status_code == 403 and callbacks == []
    domain.refresh_from_db()
    assert domain.check_requested_at is None


def test_the_check_of_a_domain_deleted_meanwhile_does_nothing(logged_in, domain, dns_server, press_verify, worker):
    from accounts.tasks import check_sender_domain

    _, callbacks = press_verify(logged_in, domain)
    domain.delete()
    worker(callbacks)  # no error
    assert check_sender_domain.apply(args=[domain.pk]).successful()
    assert dns_server.queries == [] and not SenderDomain.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_without_a_broker_the_check_runs_at_commit_and_verify_answers_with_the_outcome(logged_in, domain, dns_server):
    """`make run`: Celery runs tasks in the web process, at commit, so Verify shows the outcome at once."""
    from loopsync.celery import app

    dns_server.records["acme.com"] = [domain.txt_value]
    eager, app.conf.task_always_eager = app.conf.task_always_eager, True
    try:
        response = logged_in.post(reverse("sending-settings:verify", args=[domain.pk]), follow=True)
    finally:
        app.conf.task_always_eager = eager
    body = response.content.decode()
    assert "acme.com is verified" in body and CHECKING not in body


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_verifies_the_domain_while_the_page_polls(postgres, celery_worker, logged_in, domain, dns_server):
    dns_server.records["acme.com"] = [domain.txt_value]
    logged_in.post(reverse("sending-settings:verify", args=[domain.pk]))
    deadline = time.monotonic() + 20
    row = _status(logged_in, domain).content.decode()
    while CHECKING in row and time.monotonic() < deadline:
        time.sleep(0.05)
        row = _status(logged_in, domain).content.decode()
    assert "Verified" in row
    assert SenderDomain.objects.get(pk=domain.pk).verified_at is not None


def _settings_in_a_fresh_process(**env) -> str:
    import os
    import subprocess
    import sys
    from pathlib import Path

    names = ("SENDER_DOMAIN_DNS_TIMEOUT", "SENDER_DOMAIN_CHECK_INTERVAL")
    code = "import django; django.setup(); from django.conf import settings as s; "
    code += "print(s.SENDER_DOMAIN_DNS_TIMEOUT, s.SENDER_DOMAIN_CHECK_INTERVAL)"
    result = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **{k: v for k, v in os.environ.items() if k not in names},
            "DEBUG": "true",
            "DJANGO_SETTINGS_MODULE": "loopsync.settings",
            **env,
        },
    )
    return result.stdout.strip() or result.stderr


def test_the_dns_timeout_is_two_seconds_and_the_check_interval_thirty_unless_configured():
    assert _settings_in_a_fresh_process() == "2.0 30"
    assert (
        _settings_in_a_fresh_process(SENDER_DOMAIN_DNS_TIMEOUT="1.5", SENDER_DOMAIN_CHECK_INTERVAL="120") == "1.5 120"
    )
