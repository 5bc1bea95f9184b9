"""CSV import and export of the Audience (contacts.services.importing, exporting), through the services and the
commands: headers mapped by name, updates by userId then email, empty cells and `null`, refused rows with their
reasons, resuming after a stop, and a round trip that gives the same file."""

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from contacts.models import Contact, ContactImport, ContactProperty
from contacts.services import contacts_rows, csv_lines, import_create, import_run, import_start
from contacts.services import importing as importing_module
from contacts.services.importing import ImportError_

pytestmark = pytest.mark.django_db


def run(team, text: str, *, mapping=None, trigger_loops=False) -> ContactImport:
    contact_import = import_create(team=team, user=None, filename="people.csv", raw=text.encode())
    import_start(
        contact_import=contact_import,
        mapping=contact_import.mapping if mapping is None else mapping,
        trigger_loops=trigger_loops,
        in_celery=False,
    )
    assert import_run(import_id=contact_import.pk) == "done"
    contact_import.refresh_from_db()
    return contact_import


def export(team) -> str:
    return "".join(csv_lines(contacts_rows(team=team, contacts=Contact.objects.filter(team=team, livemode=True))))


def test_loops_sample_headers_in_any_case_map_to_fields_and_other_columns_become_typed_properties(team):
    text = (
        "EMAIL,first name,Last_Name,user-group, Source ,USER ID,Company Name,Seats,Trial,Renews\n"
        "ada@example.com,Ada,Lovelace,founders,waitlist,u1,Pro,3,true,2027-01-31\n"
        "alan@example.com,Alan,Turing,,,u2,Basic,1.5,no,2027-02-01T10:00:00Z\n"
    )
    contact_import = import_create(team=team, user=None, filename="people.csv", raw=text.encode())
    assert contact_import.mapping == [
        "email", "first_name", "last_name", "user_group", "source", "user_id",
        "property:companyName", "property:seats", "property:trial", "property:renews",
    ]  # fmt: skip
    assert contact_import.total == 2
    done = run(team, text)
    assert (done.created, done.updated, done.failed) == (2, 0, 0)
    types = dict(ContactProperty.objects.filter(team=team).values_list("key", "type"))
    assert types == {"companyName": "string", "seats": "number", "trial": "boolean", "renews": "date"}
    ada = Contact.objects.get(team=team, email="ada@example.com")
    assert (ada.first_name, ada.last_name, ada.user_group, ada.source, ada.user_id) == (
        "Ada", "Lovelace", "founders", "waitlist", "u1"
    )  # fmt: skip
    assert ada.properties == {"companyName": "Pro", "seats": 3, "trial": True, "renews": "2027-01-31"}
    alan = Contact.objects.get(team=team, email="alan@example.com")
    assert alan.properties["seats"] == 1.5 and alan.properties["trial"] is False and alan.source == ""


def test_rows_update_by_user_id_then_email_an_empty_cell_keeps_and_null_clears(team):
    run(team, "Email,First Name,User Id,plan\nada@example.com,Ada,u1,Pro\nbob@example.com,Bob,,Basic\n")
    done = run(
        team,
        "Email,First Name,User Id,plan\n"
        "ada@new.example.com,,u1,null\n"  # found by its userId: a new email, the name kept, the plan cleared
        "BOB@example.com,Robert,u2,\n"  # found by its email: a userId given, the plan kept
        "carol@example.com,Carol,,Pro\n",
    )
    assert (done.created, done.updated, done.unchanged, done.failed) == (1, 2, 0, 0)
    ada = Contact.objects.get(team=team, user_id="u1")
    assert ada.email == "ada@new.example.com" and ada.first_name == "Ada" and "plan" not in ada.properties
    bob = Contact.objects.get(team=team, email="bob@example.com")
    assert (bob.first_name, bob.user_id, bob.properties) == ("Robert", "u2", {"plan": "Basic"})
    again = run(team, "Email,First Name\nbob@example.com,Robert\n")
    assert (again.updated, again.unchanged) == (0, 1)


def test_refused_rows_say_why_the_others_go_on_and_can_be_downloaded(team):
    ContactProperty.objects.create(team=team, key="seats", label="Seats", type="number")
    done = run(
        team,
        "Email,Seats,Subscribed,User Id\n"
        "not-an-email,1,true,\n"
        "ok@example.com,many,true,\n"
        ",2,true,nobody\n"
        "fine@example.com,2,maybe,\n"
        "nul@example.com,2,tr\x00ue,\n"
        "good@example.com,2,false,\n",
    )
    assert (done.created, done.failed) == (1, 5)
    reasons = [error.reason for error in done.error_rows.all()]
    assert reasons == [
        "“not-an-email” is not an email address.",
        "seats is a number: “many” is not one.",
        "No contact has this User ID, and a new one needs an email.",
        "Subscribed is true or false.",
        "A cell holds a NUL character, which no text can.",
    ]
    good = Contact.objects.get(team=team, email="good@example.com")
    assert not good.subscribed and good.unsubscribed_by == "team"
    lines = list(csv_lines(importing_module.import_errors_rows(done)))
    assert lines[0] == "Line,Reason,Email,Seats,Subscribed,User Id\r\n"
    assert lines[2] == "3,seats is a number: “many” is not one.,ok@example.com,many,true,\r\n"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff\xfeE\x00", "not UTF-8"),
        (b"", "The file is empty"),
        (b"Email\n", "a header but no rows"),
        (",".join(f"c{n}" for n in range(201)).encode() + b"\nx\n", "at most 200 columns"),
        (b'Email\n"' + b"x" * 20_000 + b'"\n', "a cell is too long, on line 2"),
    ],
)
def test_a_file_that_cannot_be_imported_says_why_and_keeps_nothing(team, raw, message):
    with pytest.raises(ImportError_, match=message):
        import_create(team=team, user=None, filename="bad.csv", raw=raw)
    assert not ContactImport.objects.exists()


def test_a_mapping_is_checked_before_anything_starts(team):
    contact_import = import_create(team=team, user=None, filename="p.csv", raw=b"Email,Name,Other\na@example.com,A,x\n")
    for mapping, message in [
        (["", "first_name", ""], "Map a column to Email"),
        (["email", "first_name", "first_name"], "Two columns fill the same field: first_name."),
        (["email", "property:1bad", ""], "is not a property name"),
        (["email", "favourite", ""], "“favourite” is not a field."),
        (["email"], "Map every column"),
    ]:
        with pytest.raises(ValidationError, match=message):
            import_start(contact_import=contact_import, mapping=mapping, trigger_loops=False, in_celery=False)
    assert ContactImport.objects.get(pk=contact_import.pk).status == "mapping" and not ContactProperty.objects.exists()


def test_an_import_stopped_after_a_batch_goes_on_from_there_and_doubles_nothing(team, monkeypatch):
    monkeypatch.setattr(importing_module, "BATCH_ROWS", 2)
    text = "Email\n" + "".join(f"c{n}@example.com\n" for n in range(5))
    contact_import = import_create(team=team, user=None, filename="p.csv", raw=text.encode())
    import_start(contact_import=contact_import, mapping=["email"], trigger_loops=False, in_celery=False)
    assert import_run(import_id=contact_import.pk, budget_seconds=0) == "queued"  # one batch, then hands over
    contact_import.refresh_from_db()
    assert (contact_import.done, contact_import.created, contact_import.percent) == (2, 2, 40)
    assert import_run(import_id=contact_import.pk) == "done"
    contact_import.refresh_from_db()
    assert (contact_import.done, contact_import.created) == (5, 5)
    assert Contact.objects.filter(team=team).count() == 5
    assert import_run(import_id=contact_import.pk) == ""  # done: nobody claims it again


def test_export_then_import_elsewhere_then_export_gives_the_same_file_and_neutralises_formulas(team, other_team):
    ContactProperty.objects.create(team=team, key="planName", label="Plan", type="string")
    ContactProperty.objects.create(team=team, key="seats", label="Seats", type="number")
    ContactProperty.objects.create(team=team, key="vip", label="VIP", type="boolean")
    ContactProperty.objects.create(team=team, key="renews", label="Renews", type="date")
    Contact.objects.create(
        team=team, email="ada@example.com", first_name="Ada", last_name="=HYPERLINK(1)", source="api",
        user_group="-founders", user_id="u1", properties={"planName": "@Pro", "seats": -3, "vip": True,
                                                         "renews": "2027-01-31T00:00:00+00:00"},
    )  # fmt: skip
    Contact.objects.create(
        team=team, email="bob@example.com", subscribed=False, unsubscribed_by="team", properties={"seats": 2.5}
    )
    first = export(team)
    assert ",'=HYPERLINK(1),api," in first and ",'-founders," in first and ",'@Pro," in first
    assert ",-3," in first  # a number is not a formula
    run(team=other_team, text=first)
    assert export(other_team) == first
    ada = Contact.objects.get(team=other_team, email="ada@example.com")
    assert ada.last_name == "=HYPERLINK(1)" and ada.properties["planName"] == "@Pro" and ada.properties["seats"] == -3


def test_the_commands_import_with_a_summary_and_export(team, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("Email,First Name,Colour\nada@example.com,Ada,red\nnope,,\n")
    out = io.StringIO()
    call_command("contacts_import", str(path), "--team", team.name, stdout=out)
    assert "2 rows: 1 new, 0 updated, 0 unchanged, 1 refused (done)." in out.getvalue()
    assert "line 3: “nope” is not an email address." in out.getvalue()
    exported = io.StringIO()
    call_command("contacts_export", "--team", str(team.pk), stdout=exported)
    header, row = exported.getvalue().splitlines()[:2]
    assert header.startswith("Email,First Name,Last Name,Source,Subscribed,User Group,User Id,")
    assert "colour" in header.split(",") and row.startswith("ada@example.com,Ada,,CSV import,true,,,")


def test_semicolons_all_caps_headers_and_a_refused_rows_file_are_read_as_meant(team):
    contact_import = import_create(
        team=team, user=None, filename="p.csv", raw=b"Email;MEMBER_RATING;First Name\na@example.com;5;A\n"
    )
    assert contact_import.mapping == ["email", "property:memberRating", "first_name"]
    again = import_create(
        team=team, user=None, filename="p-refused-rows.csv", raw=b"Line,Reason,Email\n3,bad,a@example.com\n"
    )
    assert again.mapping == ["", "", "email"]  # the file's own Line and Reason columns are skipped


def test_the_refused_rows_file_neutralises_formulas_too(team):
    done = run(team, "Email,Note\nnot-an-email,=1+1\n")
    lines = list(csv_lines(importing_module.import_errors_rows(done)))
    assert lines[1].endswith(",'=1+1\r\n")


@pytest.mark.parametrize("unsubscribed_by", ["", "link", "stripe"])
def test_a_file_never_resubscribes_whom_a_team_member_may_not(team, unsubscribed_by):
    Contact.objects.create(team=team, email="gone@example.com", subscribed=False, unsubscribed_by=unsubscribed_by)
    Contact.objects.create(team=team, email="paused@example.com", subscribed=False, unsubscribed_by="team")
    run(team, "Email,Subscribed\ngone@example.com,true\npaused@example.com,true\n")
    assert not Contact.objects.get(email="gone@example.com").subscribed  # as on the contact's page
    assert Contact.objects.get(email="paused@example.com").subscribed


def test_a_text_starting_with_an_apostrophe_and_a_formula_and_a_unix_date_survive_the_round_trip(team, other_team):
    ContactProperty.objects.create(team=team, key="renews", label="Renews", type="date")
    Contact.objects.create(
        team=team, email="ada@example.com", first_name="'=not a formula", properties={"renews": 1_767_225_600_000}
    )
    first = export(team)
    assert "''=not a formula" in first  # one apostrophe for the spreadsheet, which the import takes off again
    ContactProperty.objects.create(team=other_team, key="renews", label="Renews", type="date")
    done = run(other_team, first)
    assert (done.created, done.failed) == (1, 0)
    again = Contact.objects.get(team=other_team)
    assert (again.first_name, again.properties["renews"]) == ("'=not a formula", 1_767_225_600_000)


def test_a_batch_locks_its_email_and_user_id_matches_in_one_statement(team):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's")
    run(team, "Email,User Id\nada@example.com,u1\nbob@example.com,\n")
    with CaptureQueriesContext(connection) as queries:
        done = run(team, "Email,User Id,First Name\nada@new.example.com,u1,Ada\nbob@example.com,,Bob\n")
    assert (done.updated, done.failed) == (2, 0)
    locks = [q["sql"] for q in queries if "FOR NO KEY UPDATE" in q["sql"] and "contacts_contact" in q["sql"]]
    assert len(locks) == 1, locks  # both contacts, one id-ordered statement


def test_the_upload_keeps_what_its_scan_found_which_is_what_the_file_gives(team):
    text = (
        "Email;Seats;Trial;Renews;Notes\n"
        + "".join(f"c{n}@example.com;{n};{'yes' if n % 2 else 'no'};2027-01-{n + 1:02};\n\n" for n in range(12))
        + "last@example.com;7.5;no;2027-02-01;null\n"
    )
    contact_import = import_create(team=team, user=None, filename="p.csv", raw=text.encode())
    kept = ContactImport.objects.get(pk=contact_import.pk)
    ContactImport.objects.filter(pk=kept.pk).update(data=b"")  # the file is not read again
    scan = importing_module.import_scan(kept)
    assert scan == importing_module._scan(text)
    assert (scan.total, len(scan.preview)) == (13, importing_module.PREVIEW_ROWS)
    assert [(column.header, column.type) for column in scan.columns] == [
        ("Email", "string"), ("Seats", "number"), ("Trial", "boolean"), ("Renews", "date"), ("Notes", "string")
    ]  # fmt: skip
    assert scan.columns[0].samples == [f"c{n}@example.com" for n in range(5)] and scan.columns[4].samples == []


def test_an_upload_kept_before_its_scan_was_is_scanned_once_more_and_that_kept(team):
    contact_import = import_create(team=team, user=None, filename="p.csv", raw=b"Email,Seats\na@example.com,3\n")
    ContactImport.objects.filter(pk=contact_import.pk).update(scan={})  # as the migration left older uploads
    scan = importing_module.import_scan(ContactImport.objects.get(pk=contact_import.pk))
    assert [column.type for column in scan.columns] == ["string", "number"] and scan.total == 1
    ContactImport.objects.filter(pk=contact_import.pk).update(data=b"")
    assert importing_module.import_scan(ContactImport.objects.get(pk=contact_import.pk)) == scan


def test_first_surname_and_similar_headers_fill_the_contacts_names(team):
    for headers in ("Email,First,Surname", "E-mail,Given name,Family name", "email,forename,last"):
        contact_import = import_create(
            team=team, user=None, filename="people.csv", raw=f"{headers}\nada@example.com,Ada,Lovelace\n".encode()
        )
        assert contact_import.mapping == ["email", "first_name", "last_name"], headers
