"""Settings → API: list the team's keys, create one (shown once), revoke one, scoped to the team."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from api.models import ApiKey
from api.services import api_key_authenticate, api_key_create

pytestmark = pytest.mark.django_db

KEY_RE = re.compile(r'id="api-key"[^>]*value="(ls_[A-Za-z0-9_-]+)"')


@pytest.fixture
def api_key(team, user):
    return api_key_create(team=team, name="Backend", created_by=user).api_key


def test_empty_list_explains_how_to_use_the_api(logged_in, settings):
    settings.SITE_URL = "https://loopsync.example.com"
    response = logged_in.get(reverse("api-settings:list"))
    body = response.content.decode()
    assert response.status_code == 200 and "No API key yet" in body
    assert "https://loopsync.example.com/api/" in body and "Authorization: Bearer &lt;key&gt;" in body
    assert 'href="/api/docs/"' in body and "Create key" in body
    assert 'aria-current="page">Settings</a>' in body  # the main nav keeps Settings highlighted
    assert 'aria-current="page">API</a>' in body and reverse("webhook-settings:list") in body


def test_the_stripe_settings_page_has_the_tab_to_the_api_page(logged_in):
    body = logged_in.get(reverse("webhook-settings:list")).content.decode()
    assert (
        f'href="{reverse("api-settings:list")}"' in body and 'aria-current="page">Incoming webhooks: Stripe</a>' in body
    )


def test_list_shows_the_teams_keys_only(logged_in, api_key, other_team):
    api_key_create(team=other_team, name="Globex secret project")
    body = logged_in.get(reverse("api-settings:list")).content.decode()
    assert "Backend" in body and f"<code>{api_key.prefix}…</code>" in body
    assert "owner" in body and "never" in body and "Active" in body
    assert "Globex secret project" not in body


def test_create_shows_the_key_once_and_stores_only_its_hash(logged_in, team, user):
    response = logged_in.post(reverse("api-settings:new"), {"name": "Zapier"})
    body = response.content.decode()
    assert response.status_code == 200  # rendered in the answer to the POST: no redirect
    assert "it will not be shown again" in body and "Copy" in body
    assert "no-store" in response["Cache-Control"]
    key = KEY_RE.search(body).group(1)
    api_key = ApiKey.objects.get(team=team)
    assert api_key.name == "Zapier" and api_key.created_by == user and key.startswith(api_key.prefix)
    for field in ApiKey._meta.concrete_fields:
        assert key not in str(getattr(api_key, field.attname))
    assert key not in str(dict(logged_in.session)) and key not in str(response.cookies)
    later = logged_in.get(reverse("api-settings:list")).content.decode()
    assert key not in later and f"{api_key.prefix}…" in later and "Zapier" in later
    assert api_key_authenticate(key) == api_key


def test_get_on_new_goes_back_to_the_list(logged_in):
    response = logged_in.get(reverse("api-settings:new"))
    assert response.status_code == 302 and response["Location"] == reverse("api-settings:list")
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "This field is required."), ("   ", "This field is required."), ("x" * 121, "at most 120 characters")],
)
def test_a_bad_name_shows_the_form_again_and_saves_nothing(logged_in, name, message):
    response = logged_in.post(reverse("api-settings:new"), {"name": name})
    body = response.content.decode()
    assert response.status_code == 400 and message in body and 'id="api-key"' not in body
    assert "Create key" in body
    assert not ApiKey.objects.exists()


def test_revoke_asks_first_then_the_key_stops_working(logged_in, team):
    new = api_key_create(team=team, name="Old")
    url = reverse("api-settings:revoke", args=[new.api_key.pk])
    page = logged_in.get(url).content.decode()
    assert "Revoke key Old?" in page and f"{new.api_key.prefix}…" in page
    new.api_key.refresh_from_db()
    assert new.api_key.active  # the GET changes nothing
    response = logged_in.post(url, follow=True)
    assert response.redirect_chain[-1][0] == reverse("api-settings:list")
    body = response.content.decode()
    assert "was revoked" in body and "Revoked" in body
    new.api_key.refresh_from_db()
    assert not new.api_key.active
    assert api_key_authenticate(new.key) is None
    revoked_at = new.api_key.revoked_at
    logged_in.post(url)  # a second submit changes nothing
    new.api_key.refresh_from_db()
    assert new.api_key.revoked_at == revoked_at


@pytest.mark.parametrize("method", ["get", "post"])
def test_another_teams_user_gets_404_on_revoke(client, outsider, api_key, method):
    client.force_login(outsider)
    response = getattr(client, method)(reverse("api-settings:revoke", args=[api_key.pk]))
    assert response.status_code == 404
    api_key.refresh_from_db()
    assert api_key.active


def test_an_unknown_key_is_404(logged_in):
    assert logged_in.get(reverse("api-settings:revoke", args=[999999])).status_code == 404


def test_pages_need_login(client, api_key):
    for url in [reverse("api-settings:list"), reverse("api-settings:revoke", args=[api_key.pk])]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert client.post(reverse("api-settings:new"), {"name": "x"}).status_code == 302
    assert not ApiKey.objects.exclude(pk=api_key.pk).exists()


def test_forms_need_csrf(user, api_key):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(reverse("api-settings:new"), {"name": "Sneaky"}).status_code == 403
    assert strict.post(reverse("api-settings:revoke", args=[api_key.pk])).status_code == 403
    assert not ApiKey.objects.filter(name="Sneaky").exists()
    api_key.refresh_from_db()
    assert api_key.active
    body = strict.get(reverse("api-settings:list")).content.decode()
    assert body.count('name="csrfmiddlewaretoken"') >= 2  # the create form and log out
    assert (
        'name="csrfmiddlewaretoken"' in strict.get(reverse("api-settings:revoke", args=[api_key.pk])).content.decode()
    )


def test_reloading_the_page_that_showed_a_new_key_makes_no_second_key(logged_in, team):
    form = logged_in.get(reverse("api-settings:list")).content.decode()
    request_id = re.search(r'name="request_id" value="([0-9a-f]{32})"', form).group(1)
    first = logged_in.post(reverse("api-settings:new"), {"name": "Zapier", "request_id": request_id})
    assert first.status_code == 200 and KEY_RE.search(first.content.decode())
    again = logged_in.post(reverse("api-settings:new"), {"name": "Zapier", "request_id": request_id}, follow=True)
    body = again.content.decode()
    assert "was created already, and its key shown once" in body and not KEY_RE.search(body)
    assert ApiKey.objects.filter(team=team).count() == 1
    other_form = logged_in.get(reverse("api-settings:list")).content.decode()
    assert request_id not in other_form  # each rendered form gets its own: a new key is one click away
