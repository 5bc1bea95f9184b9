"""Transactional emails in the app: list, write with a live preview, edit, delete; scoped to the team."""

import html
import re

import pytest
from django.test import Client
from django.urls import reverse

from loops.models import TransactionalEmail

pytestmark = pytest.mark.django_db

FORM = {
    "name": "Password reset",
    "subject": "Reset your password, {{ data.name }}",
    "preview_text": "",
    "body": "[Reset it]({{ data.reset_url }}){.button}",
    "from_name": "",
    "from_email": "",
    "reply_to": "",
    "required_variables": "name, reset_url",
}


@pytest.fixture
def reset(team):
    return TransactionalEmail.objects.create(
        team=team, public_id="reset-1", name="Reset", subject="Reset", body="Hi", required_variables=["name"]
    )


def test_creates_a_transactional_email_with_an_id(logged_in, team):
    assert "New transactional email" in logged_in.get(reverse("loops:transactional-new")).content.decode()
    response = logged_in.post(reverse("loops:transactional-new"), FORM)
    created = TransactionalEmail.objects.get(team=team)
    assert response["Location"] == reverse("loops:transactional", args=[created.pk])
    assert created.public_id.startswith("password-reset-") and created.required_variables == ["name", "reset_url"]
    page = logged_in.get(response["Location"]).content.decode()
    assert created.public_id in page and '"reset_url": "…"' in html.unescape(page)
    listing = logged_in.get(reverse("loops:transactional-list")).content.decode()
    assert "Password reset" in listing and created.public_id in listing


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"subject": ""}, "This field is required."),
        ({"body": "{% if data.x %}never closed"}, "The body has an error"),
        ({"required_variables": "name, reset-url"}, "Not a variable name: reset-url"),
    ],
)
def test_errors_keep_the_form_and_save_nothing(logged_in, changes, message):
    response = logged_in.post(reverse("loops:transactional-new"), {**FORM, **changes})
    assert response.status_code == 400
    body = response.content.decode()
    assert html.escape(message, quote=False) in body and 'value="Password reset"' in body
    assert not TransactionalEmail.objects.exists()


def test_edits_and_keeps_the_id(logged_in, reset):
    logged_in.post(reverse("loops:transactional", args=[reset.pk]), {**FORM, "name": "Reset v2"})
    reset.refresh_from_db()
    assert (reset.name, reset.public_id, reset.subject) == ("Reset v2", "reset-1", FORM["subject"])


def test_preview_renders_data_variables(logged_in):
    response = logged_in.post(
        reverse("loops:transactional-preview"),
        {**FORM, "preview_data": '{"name": "Sam", "reset_url": "https://example.com/r/9"}'},
    )
    body = response.content.decode()
    assert "Reset your password, Sam" in body
    assert "https://example.com/r/9" in html.unescape(body)
    bad = logged_in.post(reverse("loops:transactional-preview"), {**FORM, "preview_data": "[1"}).content.decode()
    assert "The preview data is not a JSON object." in bad


def test_deletes_after_confirming(logged_in, reset):
    assert "Delete “Reset”?" in logged_in.get(reverse("loops:transactional-delete", args=[reset.pk])).content.decode()
    assert TransactionalEmail.objects.exists()
    logged_in.post(reverse("loops:transactional-delete", args=[reset.pk]))
    assert not TransactionalEmail.objects.exists()


@pytest.mark.parametrize(
    ("name", "method"),
    [("loops:transactional", "get"), ("loops:transactional", "post"),
     ("loops:transactional-delete", "get"), ("loops:transactional-delete", "post")],
)  # fmt: skip
def test_another_teams_user_gets_404(client, outsider, reset, name, method):
    client.force_login(outsider)
    assert getattr(client, method)(reverse(name, args=[reset.pk]), FORM).status_code == 404
    reset.refresh_from_db()
    assert reset.name == "Reset"
    assert "Reset" not in client.get(reverse("loops:transactional-list")).content.decode()


def test_forms_need_csrf(user, reset):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(user)
    for url in (
        reverse("loops:transactional", args=[reset.pk]),
        reverse("loops:transactional-delete", args=[reset.pk]),
    ):
        assert csrf_client.post(url, FORM).status_code == 403
    assert TransactionalEmail.objects.filter(pk=reset.pk, name="Reset").exists()


def test_a_long_name_still_gets_an_id_that_fits(logged_in, team):
    logged_in.post(reverse("loops:transactional-new"), {**FORM, "name": "Password reset for new customers of the shop"})
    created = TransactionalEmail.objects.get(team=team)
    assert len(created.public_id) <= 32 and created.public_id.startswith("password-reset-for-new-")


def test_the_sample_preview_data_gives_a_link_variable_a_url_so_the_preview_shows_the_link(logged_in, team):
    transactional = TransactionalEmail.objects.create(
        team=team,
        public_id="reset-2",
        name="Reset",
        subject="Reset, {{ data.name }}",
        body=FORM["body"],
        required_variables=["name", "reset_url"],
    )
    page = logged_in.get(reverse("loops:transactional", args=[transactional.pk])).content.decode()
    assert '"reset_url": "https://example.com/reset_url"' in html.unescape(page)
    assert '"name": "sample name"' in html.unescape(page)
    frame = html.unescape(re.search(r'class="email-frame"[^>]*srcdoc="([^"]*)"', page, re.S)[1])
    assert 'href="https://example.com/reset_url"' in frame and "[Reset it]" not in frame
