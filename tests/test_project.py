"""The project's promises: strict settings, login, the home page, tenancy, the admin, local set-up."""

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from accounts.models import Membership, Team
from accounts.selectors import team_object_or_404
from contacts.models import Contact

ROOT = Path(__file__).resolve().parent.parent


def settings_import(**env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "CELERY_BROKER_URL", "SITE_URL"}}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "loopsync.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({}, "SECRET_KEY, CELERY_BROKER_URL, SITE_URL"),
        ({"SECRET_KEY": "x" * 50, "SITE_URL": "https://loopsync.example.com"}, "CELERY_BROKER_URL"),
        ({"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0", "SITE_URL": "https://a.example"}, "SECRET_KEY"),
        ({"SECRET_KEY": "x" * 50, "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"}, "SITE_URL"),
    ],
)
def test_production_refuses_to_start_without_secret_key_broker_or_site_url(env, missing):
    result = settings_import(DEBUG="false", **env)
    assert result.returncode != 0
    assert f"DEBUG is off, so {missing} must be set" in result.stderr


def test_production_starts_with_secret_key_broker_and_site_url():
    result = settings_import(
        DEBUG="false", SECRET_KEY="x" * 50, CELERY_BROKER_URL="redis://127.0.0.1:6379/0", SITE_URL="https://a.example"
    )
    assert result.returncode == 0, result.stderr


def test_a_bad_boolean_is_an_error_not_false():
    result = settings_import(DEBUG="maybe")
    assert result.returncode != 0 and "DEBUG='maybe' is not a boolean" in result.stderr


def test_development_runs_tasks_in_process():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; print(settings.CELERY_TASK_ALWAYS_EAGER)",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **{k: v for k, v in os.environ.items() if k != "CELERY_BROKER_URL"},
            "DEBUG": "true",
            "DJANGO_SETTINGS_MODULE": "loopsync.settings",
        },
    )
    assert result.stdout.strip() == "True", result.stderr


@pytest.mark.django_db
def test_home_requires_login(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_dashboard_counts_the_current_teams_data_and_says_what_to_do_next(client, user, team):
    Contact.objects.create(team=team, email="a@example.com")
    client.force_login(user)
    body = client.get(reverse("home")).content.decode()
    assert "<span>1</span> contacts" in body
    assert "Create a Stripe endpoint" in body and "Create a loop from a template" in body


@pytest.mark.django_db
def test_dashboard_never_counts_another_teams_data(client, outsider, endpoint):
    Contact.objects.create(team=endpoint.team, email="secret-customer@example.com")
    client.force_login(outsider)
    body = client.get(reverse("home")).content.decode()
    assert "<span>0</span> contacts" in body


@pytest.mark.django_db
def test_team_object_or_404_hides_other_teams_objects(team, other_team):
    from django.http import Http404

    contact = Contact.objects.create(team=team, email="a@example.com")
    assert team_object_or_404(Contact, team, pk=contact.pk) == contact
    with pytest.raises(Http404):
        team_object_or_404(Contact, other_team, pk=contact.pk)
    with pytest.raises(Http404):
        team_object_or_404(Contact.objects.all(), None, pk=contact.pk)


@pytest.mark.django_db
def test_login_page_has_csrf_and_logs_in(client, user):
    page = client.get(reverse("login"))
    assert "csrfmiddlewaretoken" in page.content.decode()
    response = client.post(reverse("login"), {"username": "owner", "password": "pw-owner-123"})
    assert response.status_code == 302 and response["Location"] == reverse("home")


@pytest.mark.django_db
def test_healthz(client):
    assert client.get("/healthz").json() == {"ok": True}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "model",
    [
        "accounts/team",
        "accounts/membership",
        "contacts/contact",
        "loops/event",
        "loops/emailactivity",
        "webhooks/endpoint",
        "webhooks/eventsetting",
        "webhooks/delivery",
    ],
)
def test_every_model_has_an_admin_page(admin_client, model, endpoint):
    assert admin_client.get(f"/admin/{model}/").status_code == 200


@pytest.mark.django_db
def test_admin_endpoint_page_never_shows_the_secret(admin_client, endpoint):
    body = admin_client.get(f"/admin/webhooks/endpoint/{endpoint.pk}/change/").content.decode()
    assert endpoint.secret_hint in body and endpoint.signing_secret not in body


@pytest.mark.django_db
def test_local_admin_prints_the_password_once():
    first, second = StringIO(), StringIO()
    call_command("local_admin", stdout=first)
    call_command("local_admin", stdout=second)
    password = first.getvalue().split("password: ")[1].split()[0]
    user = get_user_model().objects.get(username="admin")
    assert user.check_password(password) and user.is_superuser
    assert password not in second.getvalue()
    assert Membership.objects.filter(user=user, role="owner").count() == 1 and Team.objects.count() == 1


def settings_value(name: str, **env) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EMAIL_")}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django; django.setup(); from django.conf import settings; print(settings.{name})",
        ],
        cwd=ROOT,
        env={**clean, "DEBUG": "true", "DJANGO_SETTINGS_MODULE": "loopsync.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_email_goes_to_the_console_by_default_and_smtp_when_configured():
    assert settings_value("EMAIL_BACKEND") == "django.core.mail.backends.console.EmailBackend"
    smtp = {"EMAIL_URL": "smtp+tls://user:pw@smtp.example.com:587"}
    assert settings_value("EMAIL_BACKEND", **smtp) == "django.core.mail.backends.smtp.EmailBackend"
    assert settings_value("EMAIL_HOST", **smtp) == "smtp.example.com"
    usual = {"EMAIL_HOST": "mail.example.com", "EMAIL_PORT": "2525", "EMAIL_USE_TLS": "true"}
    assert settings_value("EMAIL_BACKEND", **usual) == "django.core.mail.backends.smtp.EmailBackend"
    assert settings_value("EMAIL_PORT", **usual) == "2525" and settings_value("EMAIL_USE_TLS", **usual) == "True"
    provider = {"EMAIL_BACKEND": "anymail.backends.postmark.EmailBackend", "ANYMAIL": '{"POSTMARK_SERVER_TOKEN": "x"}'}
    assert settings_value("EMAIL_BACKEND", **provider) == "anymail.backends.postmark.EmailBackend"


@pytest.mark.django_db(transaction=True)  # the tick closes connections between jobs, as a thread must
def test_in_process_periodic_tick_advances_due_runs_and_sweeps(team, make_loop, mailoutbox):
    """Without a broker (make run) the beat's work runs in a thread; one tick does what beat does."""
    from datetime import timedelta

    from django.utils import timezone

    from contacts.services import contact_sync
    from loops.models import LoopRun
    from loops.services import event_fire
    from loopsync import inprocess
    from loopsync.celery import app

    make_loop(team)
    contact = contact_sync(team=team, email="ada@example.com", full_name="Ada Lovelace").contact
    event_fire(team=team, contact=contact, name="failedPayment", idempotency_key="evt_1")  # wake-up never ran
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        inprocess._tick()
    finally:
        app.conf.task_always_eager = eager
    assert LoopRun.objects.get().status == "waiting" and len(mailoutbox) == 1
    LoopRun.objects.update(next_due_at=timezone.now() - timedelta(seconds=1), wait_until=timezone.now())
    app.conf.task_always_eager = True
    try:
        inprocess._tick()
    finally:
        app.conf.task_always_eager = eager
    assert LoopRun.objects.get().status == "completed" and len(mailoutbox) == 2
