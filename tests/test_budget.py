"""Reads bounded in time (loopsync.budget): past its budget a read gives None, the page says so, and the
connection goes on working."""

import pytest
from django.db import connection
from django.urls import reverse

from contacts.models import Contact
from loopsync import selectors
from loopsync.budget import within_budget

pytestmark = pytest.mark.django_db


def postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("statement_timeout: PostgreSQL (elsewhere a read runs unbounded)")


def _slow():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.5)")
    return "done"


def test_a_read_over_its_budget_is_canceled_and_the_connection_goes_on():
    postgresql_only()
    assert within_budget(_slow, milliseconds=50) is None
    assert within_budget(lambda: Contact.objects.count(), milliseconds=1_000) == 0  # the same connection, fine
    assert within_budget(_slow, milliseconds=5_000) == "done"


def test_the_dashboard_says_when_its_chart_took_too_long(client, logged_in, monkeypatch):
    postgresql_only()
    monkeypatch.setattr(selectors, "CHART_BUDGET_MS", 50)
    monkeypatch.setattr(selectors, "tracking_series", lambda **kwargs: _slow())  # a team of millions of emails
    page = logged_in.get(reverse("home"))
    assert page.status_code == 200
    assert "Too many emails to chart within 50 ms" in page.content.decode()
