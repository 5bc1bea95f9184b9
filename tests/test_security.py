"""Security promises: log-in throttling (django-axes) on /login/ and /admin/login/, the Content-Security-Policy
on every page, and the production settings (HTTPS, HSTS, the proxy, `check --deploy`)."""

import os
import re
import secrets
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import RequestFactory
from django.urls import reverse

from conftest import fixture_text, sign

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "pw-owner-123"  # the `user` fixture's
LOCKED = "Log-in is temporarily locked"


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    # Dozens of log-ins per test: a fast hasher keeps them cheap (the throttle never sees the hash).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def staff(user):
    user.is_staff = user.is_superuser = True
    user.save()
    return user


def log_in(client, password, username="owner", path="/login/", ip="127.0.0.1", **headers):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=ip, **headers)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


# --- log-in throttling ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_thirty_wrong_passwords_then_the_right_one_is_refused_with_the_lock_message(client, staff, path):
    for _ in range(30):
        assert log_in(client, "wrong", path=path).status_code in {200, 429}
    response = log_in(client, PASSWORD, path=path)
    assert response.status_code == 429 and not logged_in(client)
    body = response.content.decode()
    assert f"{LOCKED} for this account and your IP address" in body
    assert "too many failed attempts (5, LOGIN_FAILURE_LIMIT)" in body and "Try again in 15 minutes" in body
    assert "didn't match" not in body and "Please enter the correct" not in body  # the password wasn't checked
    assert 'name="username"' in body and 'value="owner"' in body  # the log-in form again, username kept


@pytest.mark.django_db
def test_the_lock_starts_at_the_limit(client, user, settings):
    for _ in range(settings.LOGIN_FAILURE_LIMIT - 1):
        assert log_in(client, "wrong").status_code == 200
    assert log_in(client, "wrong").status_code == 429  # the limit-th failure already says so


@pytest.mark.django_db
def test_a_lock_by_ip_covers_other_accounts(client, user):
    for name in ["ada", "grace", "alan", "edsger", "barbara"]:
        log_in(client, "guess", username=name, ip="203.0.113.9")
    response = log_in(client, PASSWORD, ip="203.0.113.9")
    assert response.status_code == 429 and f"{LOCKED} for your IP address" in response.content.decode()
    assert log_in(client, PASSWORD, ip="198.51.100.4").status_code == 302 and logged_in(client)


@pytest.mark.django_db
def test_a_lock_by_account_covers_other_ips(client, user):
    for n in range(5):
        log_in(client, "guess", ip=f"203.0.113.{n + 1}")
    response = log_in(client, PASSWORD, ip="198.51.100.4")
    assert response.status_code == 429 and f"{LOCKED} for this account:" in response.content.decode()
    assert not logged_in(client)


@pytest.mark.django_db
def test_after_the_cool_off_the_right_password_works(client, user):
    with time_machine.travel("2026-12-01 12:00:00Z", tick=False) as clock:
        for _ in range(5):
            log_in(client, "wrong")
        clock.shift(timedelta(minutes=10))
        response = log_in(client, PASSWORD)  # refused, and not counted: the lock still ends at 12:15
        assert response.status_code == 429 and "Try again in 5 minutes, after 12:15 UTC" in response.content.decode()
        assert response["Retry-After"] == "300"
        clock.shift(timedelta(minutes=5, seconds=1))
        assert log_in(client, PASSWORD).status_code == 302 and logged_in(client)


@pytest.mark.django_db
def test_a_success_before_the_limit_resets_the_count(client, user):
    for _ in range(4):
        log_in(client, "wrong")
    assert log_in(client, PASSWORD).status_code == 302
    client.post("/logout/")
    for _ in range(4):
        assert log_in(client, "wrong").status_code == 200  # 8 failures in all, but only 4 since the success
    assert log_in(client, PASSWORD).status_code == 302 and logged_in(client)
    client.post("/logout/")
    assert [log_in(client, "wrong").status_code for _ in range(5)] == [200, 200, 200, 200, 429]  # counted again


@pytest.mark.django_db
def test_logging_into_another_account_does_not_reset_the_ip_lock(client, user):
    """Anyone can sign up: a success on the attacker's own account must not clear their failures on others."""
    get_user_model().objects.create_user("mallory", "m@evil.test", "mallory-pw-1")
    for _ in range(4):
        log_in(client, "guess", ip="203.0.113.9")
    assert log_in(client, "mallory-pw-1", username="mallory", ip="203.0.113.9").status_code == 302
    client.post("/logout/")
    assert log_in(client, "guess", ip="203.0.113.9").status_code == 429
    assert log_in(client, PASSWORD, ip="198.51.100.4").status_code == 429  # the account, from anywhere


@pytest.mark.django_db
def test_without_a_trusted_proxy_a_forged_forwarded_for_does_not_escape_the_ip_lock(client, user):
    for n in range(5):
        log_in(client, "guess", username=f"user{n}", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    assert log_in(client, PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.200").status_code == 429


@pytest.mark.django_db
def test_behind_a_trusted_proxy_each_client_address_is_throttled_apart(client, user, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.2"  # every request comes from the proxy
    for n in range(5):
        log_in(client, "guess", username=f"user{n}", ip=proxy, HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert log_in(client, PASSWORD, ip=proxy, HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 429
    # What the client writes in front of the proxy's entry changes nothing; another client is not locked.
    forged = log_in(client, PASSWORD, ip=proxy, HTTP_X_FORWARDED_FOR="198.51.100.4, 203.0.113.9")
    assert forged.status_code == 429
    assert log_in(client, PASSWORD, ip=proxy, HTTP_X_FORWARDED_FOR="198.51.100.4").status_code == 302


@pytest.mark.parametrize(
    ("proxies", "forwarded_for", "expected"),
    [
        (0, "198.51.100.4", "10.0.0.2"),
        (1, "198.51.100.4", "198.51.100.4"),
        (1, "6.6.6.6, 198.51.100.4", "198.51.100.4"),
        (2, "6.6.6.6, 198.51.100.4, 10.0.0.9", "198.51.100.4"),
        (2, "198.51.100.4", "198.51.100.4"),  # fewer hops than proxies: the only one recorded
        (1, "", "10.0.0.2"),
        (1, "not-an-address", "10.0.0.2"),
        (1, "2001:db8::1", "2001:db8::1"),
    ],
)
def test_the_client_address_comes_from_the_proxy_header_only_behind_trusted_proxies(
    settings, proxies, forwarded_for, expected
):
    from accounts.login_throttle import client_ip

    settings.TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().post("/login/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded_for)
    assert client_ip(request) == expected


@pytest.mark.django_db
def test_failed_log_ins_never_log_or_store_the_password(client, user, caplog):
    from axes.models import AccessAttempt

    for _ in range(6):
        log_in(client, "Sup3r-Secret-Guess")
    assert "AXES" in caplog.text and "Sup3r-Secret-Guess" not in caplog.text
    assert "Sup3r-Secret-Guess" not in AccessAttempt.objects.get().post_data


@pytest.mark.django_db
def test_password_reset_says_the_same_for_known_and_unknown_emails(client, user):
    known = client.post(reverse("password_reset"), {"email": "owner@acme.test"}, follow=True)
    unknown = client.post(reverse("password_reset"), {"email": "nobody@acme.test"}, follow=True)
    assert known.redirect_chain == unknown.redirect_chain == [(reverse("password_reset_done"), 302)]

    def page(response):  # less the CSRF token, different on every response
        return re.sub(r"[A-Za-z0-9]{64}", "<token>", response.content.decode())

    assert page(known) == page(unknown)
    assert [m.to for m in mail.outbox] == [["owner@acme.test"]]


# --- Content-Security-Policy ----------------------------------------------------------------------------

STRICT = {
    "default-src": {"'self'"},
    "script-src": {"'self'"},
    "style-src": {"'self'"},
    "img-src": {"'self'", "data:"},
    "object-src": {"'none'"},
    "base-uri": {"'self'"},
    "form-action": {"'self'"},
    "frame-ancestors": {"'none'"},
}


def policy(response) -> dict[str, set[str]]:
    header = response.headers.get("Content-Security-Policy", "")
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: set(values) for name, *values in directives}


@pytest.mark.django_db
def test_every_html_page_carries_the_strict_policy(client, user, staff, endpoint, make_loop):
    anonymous = ["/login/", "/signup/", "/password-reset/", "/admin/login/", "/no-such-page/"]
    for path in anonymous:
        response = client.get(path)
        assert response["Content-Type"].startswith("text/html"), path
        assert policy(response) == STRICT, path
    loop = make_loop(endpoint.team, activate=False)
    client.force_login(user)
    pages = [
        reverse("home"),
        reverse("contacts:list"),
        reverse("loops:events"),
        reverse("webhook-log:endpoint", args=[endpoint.pk]),
        reverse("loops:loops"),
        reverse("loops:loop-new"),
        reverse("loops:loop", args=[loop.pk]),
        reverse("loops:transactional-list"),
        reverse("webhook-settings:list"),
        reverse("webhook-settings:detail", args=[endpoint.pk]),
        reverse("api-settings:list"),
        reverse("team-members"),
        reverse("api:docs"),
        reverse("admin:index"),
        reverse("admin:contacts_contact_changelist"),
    ]
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200 and response["Content-Type"].startswith("text/html"), path
        assert policy(response) == STRICT, path
    created = client.post(reverse("api-settings:new"), {"name": "CI"})  # the page that shows a new key once
    assert created.status_code == 200 and policy(created) == STRICT


@pytest.mark.django_db
def test_only_the_email_editors_allow_the_inline_styles_their_preview_needs(logged_in, team, make_loop):
    loop = make_loop(team, activate=False)
    step = loop.steps.filter(kind="email").first()
    editors = [
        f"/loops/{loop.pk}/steps/{step.pk}/",
        f"/loops/{loop.pk}/steps/new/?kind=email",
        "/loops/transactional/new/",
    ]
    for path in editors:
        response = logged_in.get(path)
        assert response.status_code == 200 and 'class="email-frame"' in response.content.decode(), path
        assert policy(response) == {
            **STRICT,
            "style-src": {"'self'", "'unsafe-inline'"},
            "img-src": {"'self'", "data:", "https:"},
        }, path


@pytest.mark.django_db
def test_redoc_may_write_its_own_styles_and_search_in_a_worker(client):
    response = client.get(reverse("api:redoc"))
    assert response.status_code == 200 and "<script>" not in response.content.decode()
    assert policy(response) == {**STRICT, "style-src": {"'self'", "'unsafe-inline'"}, "worker-src": {"'self'", "blob:"}}


TEMPLATE_DIRS = ["templates", "accounts", "contacts", "loops", "webhooks", "api"]
INLINE_SCRIPT = [r"<script(?![^>]*\bsrc=)[^>]*>", r"\son[a-z]+\s*=", r"\bhx-on", r"\b(?:js|javascript):"]
INLINE_STYLE = [r"<style\b", r"\sstyle\s*="]
EMAIL = Path("loops/templates/loops/email.html")  # an email, styled inline as mail clients need; never a page


def test_no_page_template_has_inline_script_event_handlers_styles_or_htmx_eval():
    offenders = []
    for folder in TEMPLATE_DIRS:
        for path in (ROOT / folder).rglob("*.html"):
            text = re.sub(r"{#.*?#}|{% comment %}.*?{% endcomment %}", "", path.read_text(), flags=re.S)
            patterns = INLINE_SCRIPT + ([] if path.relative_to(ROOT) == EMAIL else INLINE_STYLE)
            for pattern in patterns:
                offenders += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in re.finditer(pattern, text)]
    assert offenders == []


# --- production settings --------------------------------------------------------------------------------


def readme_production_env() -> dict[str, str]:
    """The first ```sh block of the README's "Production settings" section, as KEY=value pairs."""
    section = (ROOT / "README.md").read_text().split("## Production settings", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    pairs = (line.split("=", 1) for line in block.splitlines() if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def run_python(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH"}}
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**keep, "DJANGO_SETTINGS_MODULE": "loopsync.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_under_the_readmes_production_settings():
    env = readme_production_env()
    assert env["DEBUG"] == "false" and "SECRET_KEY" in env
    env["SECRET_KEY"] = secrets.token_urlsafe(50)  # the README shows a placeholder, never a real key
    result = run_python(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def settings_of(names: list[str], **env) -> dict[str, str]:
    code = "import django; django.setup(); from django.conf import settings as s; " + "; ".join(
        f"print(repr(getattr(s, {name!r}, None)))" for name in names
    )
    result = run_python(["-c", code], env)
    assert result.returncode == 0, result.stderr
    return dict(zip(names, result.stdout.strip().splitlines(), strict=True))


PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "x" * 50,
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    "SITE_URL": "https://a.example",
}
SECURITY = [
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_PROXY_SSL_HEADER",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
]


def test_production_defaults_to_https_only_and_trusts_no_proxy_header():
    assert settings_of(SECURITY, **PRODUCTION) == {
        "SECURE_SSL_REDIRECT": "True",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "False",
        "SECURE_PROXY_SSL_HEADER": "None",
        "SESSION_COOKIE_SECURE": "True",
        "CSRF_COOKIE_SECURE": "True",
    }


def test_development_keeps_plain_http():
    values = settings_of(SECURITY, DEBUG="true")
    assert values["SECURE_SSL_REDIRECT"] == "False" and values["SECURE_HSTS_SECONDS"] == "0"
    assert values["SESSION_COOKIE_SECURE"] == "False"


def test_https_settings_come_from_the_environment():
    values = settings_of(
        [*SECURITY, "TRUSTED_PROXY_COUNT"],
        **PRODUCTION,
        TRUSTED_PROXY_COUNT="1",
        SECURE_SSL_REDIRECT="false",
        SECURE_HSTS_SECONDS="600",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        SECURE_COOKIES="false",
    )
    assert values == {
        "SECURE_SSL_REDIRECT": "False",
        "SECURE_HSTS_SECONDS": "600",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "True",
        "SECURE_PROXY_SSL_HEADER": "('HTTP_X_FORWARDED_PROTO', 'https')",
        "SESSION_COOKIE_SECURE": "False",
        "CSRF_COOKIE_SECURE": "False",
        "TRUSTED_PROXY_COUNT": "1",
    }


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"SECURE_SSL_REDIRECT": "sometimes"}, "SECURE_SSL_REDIRECT='sometimes' is not a boolean"),
        ({"SECURE_HSTS_PRELOAD": "yes please"}, "SECURE_HSTS_PRELOAD='yes please' is not a boolean"),
        ({"TRUSTED_PROXY_COUNT": "-1"}, "TRUSTED_PROXY_COUNT=-1 must be 0 (no proxy) or more"),
        ({"LOGIN_FAILURE_LIMIT": "0"}, "LOGIN_FAILURE_LIMIT and LOGIN_COOLOFF_MINUTES must be at least 1"),
    ],
)
def test_a_bad_security_setting_stops_start_up(env, error):
    result = run_python(["-c", "import django; django.setup()"], {**PRODUCTION, **env})
    assert result.returncode != 0 and error in result.stderr


@pytest.mark.django_db
def test_ssl_redirect_spares_the_health_check_and_stripe_webhooks(client, settings, endpoint):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    page = client.get("/login/")
    assert page.status_code == 301 and page["Location"] == "https://testserver/login/"
    assert client.get("/healthz").json() == {"ok": True}  # a load balancer's probe over plain HTTP
    body = fixture_text("pay/invoice.payment_failed.json")
    delivered = client.post(
        endpoint.get_receive_path(), data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body)
    )
    assert delivered.status_code == 200  # Stripe does not follow redirects
    secure = client.get("/login/", secure=True)
    assert secure.status_code == 200 and secure["Strict-Transport-Security"] == "max-age=31536000"
