"""Audience → Import and Export pages: upload, map, start, follow, download the refused rows; export as filtered;
the counts; another team's imports are 404."""

import csv
import html
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from contacts.models import Contact, ContactImport, MailingList
from contacts.services.importing import IMPORT_MAX_BYTES

pytestmark = pytest.mark.django_db

CSV = "Email,First Name,Colour\nada@example.com,Ada,red\nbad-email,Bob,blue\n"


def upload(client, text: str = CSV, name: str = "people.csv"):
    return client.post(reverse("contacts:import-upload"), {"file": SimpleUploadedFile(name, text.encode())})


def test_upload_map_start_and_download_the_refused_rows(logged_in, team, run_tasks):
    response = upload(logged_in)
    contact_import = ContactImport.objects.get(team=team)
    assert response.url == reverse("contacts:import", args=[contact_import.pk])
    page = html.unescape(logged_in.get(response.url).content.decode())
    assert "2 rows." in page and "ada@example.com, bad-email" in page  # samples
    assert '<option value="email" selected>Email</option>' in page
    assert '<option value="property:colour" selected>New property: colour (string)</option>' in page
    assert Contact.objects.count() == 0  # nothing until it starts
    started = run_tasks(
        logged_in.post,
        response.url,
        {"column_0": "email", "column_1": "first_name", "column_2": "property:colour", "trigger_loops": "on"},
    )
    assert started.status_code == 302
    contact_import.refresh_from_db()
    assert (contact_import.status, contact_import.created, contact_import.failed) == ("done", 1, 1)
    assert contact_import.trigger_loops
    assert Contact.objects.get(team=team).properties == {"colour": "red"}
    page = logged_in.get(started.url).content.decode()
    assert "Download the refused rows" in page and 'value="100"' in page and "hx-trigger" not in page
    refused = logged_in.get(reverse("contacts:import-errors", args=[contact_import.pk]))
    assert refused["Content-Disposition"] == 'attachment; filename="people-refused-rows.csv"'
    rows = list(csv.reader(io.StringIO(b"".join(refused.streaming_content).decode())))
    assert rows == [
        ["Line", "Reason", "Email", "First Name", "Colour"],
        ["3", "“bad-email” is not an email address.", "bad-email", "Bob", "blue"],
    ]
    history = logged_in.get(reverse("contacts:imports")).content.decode()
    assert "people.csv" in history and "Download the 1 refused rows of people.csv" in history


def test_a_running_import_is_polled_for_its_progress(logged_in, team):
    upload(logged_in)
    contact_import = ContactImport.objects.get(team=team)
    logged_in.post(reverse("contacts:import", args=[contact_import.pk]), {"column_0": "email"})  # queued, no worker
    page = logged_in.get(reverse("contacts:import", args=[contact_import.pk])).content.decode()
    assert "Queued" in page and 'hx-trigger="every 1s"' in page and "0 of 2 rows" in page
    fragment = logged_in.get(
        reverse("contacts:import", args=[contact_import.pk]), {"progress": "1"}, headers={"HX-Request": "true"}
    ).content.decode()
    assert (
        fragment.lstrip().startswith("{#") is False and 'id="import-progress"' in fragment and "<html" not in fragment
    )


def test_a_bad_mapping_or_file_says_why_and_keeps_nothing(logged_in, team):
    upload(logged_in)
    contact_import = ContactImport.objects.get(team=team)
    refused = logged_in.post(reverse("contacts:import", args=[contact_import.pk]), {"column_1": "first_name"})
    assert refused.status_code == 400 and "Map a column to Email" in html.unescape(refused.content.decode())
    assert ContactImport.objects.get(pk=contact_import.pk).status == "mapping"
    page = html.unescape(logged_in.post(reverse("contacts:import-upload"), {}, follow=True).content.decode())
    assert "Choose a CSV file to upload." in page
    page = html.unescape(
        upload(logged_in, "", "empty.csv") and logged_in.get(reverse("contacts:imports")).content.decode()
    )
    assert "The file is empty" in page
    big = "Email\n" + "x" * (IMPORT_MAX_BYTES + 10)
    response = upload(logged_in, big, "big.csv")
    assert response.wsgi_request.upload_limit.exceeded and ContactImport.objects.filter(team=team).count() == 1
    cancelled = logged_in.post(reverse("contacts:import-cancel", args=[contact_import.pk]))
    assert cancelled.status_code == 302 and not ContactImport.objects.filter(team=team).exists()


def test_another_teams_import_is_404(outsider, team, logged_in):
    upload(logged_in)
    contact_import = ContactImport.objects.get(team=team)
    client = Client()
    client.force_login(outsider)
    for name in ("contacts:import", "contacts:import-errors"):
        assert client.get(reverse(name, args=[contact_import.pk])).status_code == 404
    assert client.post(reverse("contacts:import", args=[contact_import.pk]), {"column_0": "email"}).status_code == 404
    assert client.post(reverse("contacts:import-cancel", args=[contact_import.pk])).status_code == 404
    assert ContactImport.objects.get(pk=contact_import.pk).status == "mapping"


def test_the_upload_needs_csrf(user):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(user)
    assert upload(csrf_client).status_code == 403 and not ContactImport.objects.exists()


def test_export_streams_the_audience_as_filtered_and_the_page_counts(logged_in, team, other_team):
    vip = MailingList.objects.create(team=team, name="VIP")
    for n in range(3):
        contact = Contact.objects.create(team=team, email=f"c{n}@example.com", source="api" if n else "web")
        if n == 2:
            contact.mailing_lists.add(vip, through_defaults={"team": team})
    Contact.objects.create(team=other_team, email="theirs@example.com")
    everyone = logged_in.get(reverse("contacts:export"))
    lines = b"".join(everyone.streaming_content).decode().splitlines()
    assert lines[0].startswith("Email,First Name") and sorted(line.split(",")[0] for line in lines[1:]) == [
        "c0@example.com", "c1@example.com", "c2@example.com"
    ]  # fmt: skip
    by_source = b"".join(logged_in.get(reverse("contacts:export"), {"source": "api"}).streaming_content).decode()
    assert "c0@example.com" not in by_source and "c1@example.com" in by_source
    on_list = b"".join(logged_in.get(reverse("contacts:export"), {"list": vip.pk}).streaming_content).decode()
    assert on_list.count("@example.com") == 1
    page = logged_in.get(reverse("contacts:list")).content.decode()
    assert "3 contacts." in page and 'href="/audience/export.csv"' in page
    page = html.unescape(logged_in.get(reverse("contacts:list"), {"source": "api"}).content.decode())
    assert "2 of 3 contacts match." in page and "/audience/export.csv?source=api" in page


def test_the_refused_rows_download_neutralises_formulas_as_the_export_does(logged_in, team, run_tasks):
    upload(logged_in, 'Email,=cmd|" /C calc"!A0\n=HYPERLINK("http://evil.test"),+1\n', "evil.csv")
    contact_import = ContactImport.objects.get(team=team)
    run_tasks(logged_in.post, reverse("contacts:import", args=[contact_import.pk]), {"column_0": "email"})
    refused = logged_in.get(reverse("contacts:import-errors", args=[contact_import.pk]))
    rows = list(csv.reader(io.StringIO(b"".join(refused.streaming_content).decode())))
    assert rows[0] == ["Line", "Reason", "Email", '\'=cmd|" /C calc"!A0']
    assert rows[1][2:] == ['\'=HYPERLINK("http://evil.test")', "'+1"]
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


def test_every_audience_form_needs_csrf(user, team):
    upload_client = Client()
    upload_client.force_login(user)
    upload(upload_client)
    contact_import = ContactImport.objects.get(team=team)
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(user)
    posts = [
        (reverse("contacts:import", args=[contact_import.pk]), {"column_0": "email"}),
        (reverse("contacts:import-cancel", args=[contact_import.pk]), {}),
        (reverse("contacts:segment-new"), {"q": "ada", "segment_name": "Ada"}),
        (reverse("contacts:bulk"), {"action": "unsubscribe"}),
    ]
    for url, data in posts:
        assert csrf_client.post(url, data).status_code == 403, url
    assert ContactImport.objects.get(pk=contact_import.pk).status == "mapping"


def test_the_mapping_page_and_its_start_do_not_read_the_file_again_and_every_row_is_imported(
    logged_in, team, monkeypatch
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from contacts.services import importing
    from contacts.tasks import run_contact_import

    monkeypatch.setattr(importing, "BATCH_ROWS", 4)
    text = "Email,Seats\n" + "".join(f"c{n}@example.com,{n}\n" for n in range(3 * importing.PREVIEW_ROWS + 2))
    url = upload(logged_in, text).url
    contact_import = ContactImport.objects.get(team=team)
    kept = ContactImport.objects.filter(pk=contact_import.pk).values_list("data", flat=True).get()
    ContactImport.objects.filter(pk=contact_import.pk).update(data=b"not the file")  # read, it would fail
    with CaptureQueriesContext(connection) as queries:
        page = html.unescape(logged_in.get(url).content.decode())
        started = logged_in.post(url, {"column_0": "email", "column_1": "property:seats"})
    assert not [query["sql"] for query in queries if '"contacts_contactimport"."data"' in query["sql"]]
    assert "17 rows." in page and "c0@example.com, c1@example.com, c2@example.com, c3@example.com" in page
    assert '<option value="property:seats" selected>New property: seats (number)</option>' in page
    assert "<td>c4@example.com</td>" in page and "c5@example.com" not in page  # the preview's rows
    assert started.status_code == 302 and ContactImport.objects.get(pk=contact_import.pk).status == "queued"
    ContactImport.objects.filter(pk=contact_import.pk).update(data=kept)  # the worker reads the whole file
    assert run_contact_import(contact_import.pk) == "done"
    contact_import.refresh_from_db()
    assert (contact_import.done, contact_import.created, contact_import.failed) == (17, 17, 0)
    assert Contact.objects.get(team=team, email="c16@example.com").properties == {"seats": 16}
