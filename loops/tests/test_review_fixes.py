"""Review of issue 13's first part: a runs batch and a change of its loop do not overlap; a loop's own updates do
not start it again; a deleted loop's queued emails are not sent as transactional ones; migration 0008 on existing
rows; bad JSON, field lengths and unknown names refused instead of a 500."""

import threading
from datetime import timedelta
from unittest import mock

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, connections
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils import timezone

from conftest import chain_steps, paths_post
from contacts.models import Contact, ListMembership, MailingList
from contacts.services import contact_properties_update, contact_set_subscribed
from loops.models import EmailMessage, Loop, LoopRun, LoopStep
from loops.services import emails_drain, event_fire, loop_activate, loop_archive, loop_delete, step_insert
from loops.services import runs as runs_module
from loopsync import work


def email(subject: str) -> LoopStep:
    return LoopStep(kind="email", subject=subject, body="Hi")


def timer(hours: int) -> LoopStep:
    return LoopStep(kind="timer", delay_value=hours, delay_unit="hours")


def advance() -> None:
    """One runs batch, as a worker's drain takes it."""
    runs_module._advance_batch(runs_module.runs_claim(limit=1000))


def queued_subjects(contact) -> list[str]:
    return list(EmailMessage.objects.filter(contact=contact).order_by("id").values_list("subject", flat=True))


def postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks and deferred constraints: PostgreSQL")


# --- a runs batch and a change of its loop ---------------------------------------------------------------------


def _insert_behind(loop, first):
    step_insert(loop=loop, step=email("Behind"), parent=first)


def _archive(loop, first):
    loop_archive(loop=Loop.objects.get(pk=loop.pk))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("change", "subjects", "status"),
    [
        pytest.param(_insert_behind, ["A", "C", "D"], "completed", id="a step added behind the run is not sent late"),
        pytest.param(_archive, ["A", "C"], "stopped", id="archiving stops the run"),
    ],
)
def test_a_change_of_the_loop_while_a_batch_advances_its_run_is_not_undone_by_the_batch(team, change, subjects, status):
    postgresql_only()
    loop = Loop.objects.create(team=team, name="Line", trigger_event_name="go")
    first, *_ = chain_steps(loop, email("A"), timer(1), email("C"), timer(5), email("D"))
    loop_activate(loop=loop)
    contact = Contact.objects.create(team=team, email="c@example.com")
    with mock.patch.object(work, "wake", lambda name: False):
        event_fire(team=team, contact=contact, name="go")
        advance()  # A, then the first timer
        editor = threading.Thread(target=lambda: (change(loop, first), connections.close_all()))
        real = runs_module._advance_loaded

        def while_the_editor_saves(run, tree):
            editor.start()
            editor.join(timeout=2)  # done now, unless the batch holds the loop: then after the batch
            return real(run, tree)

        with time_machine.travel(timezone.now() + timedelta(hours=1, minutes=1)):
            with mock.patch.object(runs_module, "_advance_loaded", while_the_editor_saves):
                advance()  # the first timer ends: C, then the second timer
            editor.join()
        with time_machine.travel(timezone.now() + timedelta(hours=7)):
            advance()
    assert queued_subjects(contact) == subjects
    assert LoopRun.objects.get(contact=contact).status == status


# --- a loop's own updates ----------------------------------------------------------------------------------------


def _updates(loop, *actions):
    chain_steps(
        loop,
        *(LoopStep(kind="update_contact", update_action=a, update_property="flag", update_value=v) for a, v in actions),
    )
    return loop_activate(loop=loop)


@pytest.mark.django_db
def test_a_loop_that_changes_what_it_watches_does_not_start_itself_again(team):
    loop = Loop.objects.create(team=team, name="Flag", trigger="contact_updated", frequency="every")
    _updates(loop, ("set_property", "on"), ("clear_property", ""))
    contact = Contact.objects.create(team=team, email="x@example.com")
    contact_properties_update(contact=contact, values={"plan": "pro"})
    for _ in range(4):
        advance()
    assert LoopRun.objects.filter(loop=loop).count() == 1  # was 3, 7, 15, 31… runs, one more email each
    assert LoopRun.objects.get(loop=loop).status == "completed"


@pytest.mark.django_db
def test_loops_that_update_contacts_do_not_start_one_another_in_a_circle(team):
    watching = {"trigger": "contact_updated", "frequency": "every", "trigger_field": "contact.properties.flag"}
    first = Loop.objects.create(team=team, name="One", trigger_to="on", trigger_to_set=True, **watching)
    _updates(first, ("set_property", "off"))
    second = Loop.objects.create(team=team, name="Two", trigger_to="off", trigger_to_set=True, **watching)
    _updates(second, ("set_property", "on"))
    contact = Contact.objects.create(team=team, email="x@example.com")
    contact_properties_update(contact=contact, values={"flag": "on"})
    for _ in range(6):
        advance()
    # One starts Two (a loop can start another), which may not start One again: the circle ends there.
    assert sorted(LoopRun.objects.values_list("loop__name", flat=True)) == ["One", "Two"]
    assert set(LoopRun.objects.values_list("status", flat=True)) == {"completed"}


# --- deleting a loop ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_deleting_a_loop_skips_its_queued_emails_instead_of_sending_them_as_transactional(team, mailoutbox):
    loop = Loop.objects.create(team=team, name="Line", trigger_event_name="go")
    chain_steps(loop, email("A"))
    loop_activate(loop=loop)
    contact = Contact.objects.create(team=team, email="q@example.com")
    event_fire(team=team, contact=contact, name="go")
    advance()
    contact_set_subscribed(contact=contact, subscribed=False, by="link")
    loop_delete(loop=loop)
    emails_drain(budget_seconds=5)
    assert mailoutbox == []  # was sent: without a run it counted as transactional, unsubscribed or not
    assert EmailMessage.objects.get().status == "skipped"


# --- migration 0008 on existing rows -----------------------------------------------------------------------------


@pytest.fixture
def back_to_the_latest_migrations():
    """A test that migrates back leaves the schema as every other test expects it: at the latest migrations."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_migration_0008_converts_existing_loops_steps_and_runs(back_to_the_latest_migrations):
    postgresql_only()
    old, new = [("loops", "0007_seed_lifecycle_templates")], [("loops", "0008_loop_graph")]
    executor = MigrationExecutor(connection)
    executor.migrate(old)
    others = [node for node in executor.loader.graph.leaf_nodes() if node[0] != "loops"]
    apps = executor.loader.project_state(old + others).apps
    team = apps.get_model("accounts", "Team").objects.create(name="T")
    contact = apps.get_model("contacts", "Contact").objects.create(team=team, email="a@example.com")
    Loop, LoopStep, LoopRun = (apps.get_model("loops", name) for name in ("Loop", "LoopStep", "LoopRun"))
    loop = Loop.objects.create(team=team, name="Dunning", trigger_event_name="go", status="active")
    Loop.objects.create(team=team, name="dunning", trigger="contact_added")
    copied = Loop.objects.create(
        team=team, name="Old copy", trigger_event_name="failedPayment", template_slug="stripe-payment-failed"
    )
    steps = [
        LoopStep.objects.create(team=team, loop=loop, position=1, kind="email", subject="A", body="b"),
        LoopStep.objects.create(team=team, loop=loop, position=2, kind="timer", delay_value=1, delay_unit="days"),
        LoopStep.objects.create(
            team=team,
            loop=loop,
            position=3,
            kind="filter",
            filter_field="plan",
            filter_operator="equals",
            filter_value="pro",
        ),  # fmt: skip
    ]
    event = apps.get_model("loops", "Event").objects.create(team=team, contact=contact, name="go")
    run = LoopRun.objects.create(team=team, loop=loop, contact=contact, event=event, position=2, status="waiting",
                                 wait_until=timezone.now(), next_due_at=timezone.now())  # fmt: skip
    executor = MigrationExecutor(connection)
    executor.migrate(new)  # was: cannot ALTER TABLE "loops_loop" because it has pending trigger events
    apps = executor.loader.project_state(new + others).apps
    Loop, LoopStep, LoopRun = (apps.get_model("loops", name) for name in ("Loop", "LoopStep", "LoopRun"))
    assert sorted(Loop.objects.values_list("name", flat=True)) == ["Dunning", "Old copy", "dunning (2)"]
    copied = Loop.objects.get(pk=copied.pk)  # a dunning loop copied before: once per invoice now
    assert (copied.frequency, copied.frequency_key) == ("per_key", "invoice_id")
    assert Loop.objects.get(name="Dunning").frequency == "every"
    migrated = {step.pk: step for step in LoopStep.objects.all()}
    assert [migrated[s.pk].parent_id for s in steps] == [None, steps[0].pk, steps[1].pk]
    assert migrated[steps[2].pk].conditions == {
        "match": "all", "rules": [{"field": "contact.properties.plan", "op": "equals", "value": "pro"}]
    }  # fmt: skip
    run = LoopRun.objects.get(pk=run.pk)
    assert (run.passed, run.step_id, run.entry_key) == ({f"s{steps[0].pk}": ""}, steps[1].pk, f"event:{event.pk}")


# --- bad input: refused, not a 500 -------------------------------------------------------------------------------


def _spec(node=None, **top):
    node = {"id": "n1", "type": "email", "subject": "S", "body": "B", **(node or {})}
    return {"name": "Up", "trigger": {"type": "event", "event": "go"}, "nodes": [node], "edges": [], **top}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(_spec({"from_name": "x" * 121}), "from_name: is at most 120", id="a value past its column"),
        pytest.param(_spec({"subject": "a\u0000b"}), "Null characters", id="a NUL"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, "nested more than", id="nested too deep"),
        pytest.param(
            _spec(trigger={"type": "contact_updated", "field": "favourite_colour"}),
            "trigger.field: unknown field",
            id="an unknown field to watch",
        ),
        pytest.param(_spec(trigger={"type": "event", "event": "has spaces"}), "no spaces", id="a bad event name"),
        pytest.param(
            _spec({"type": "update_contact", "action": "set_property", "property": "not a key!", "value": "x"}),
            "nodes[0].property: A property name",
            id="a property name the contacts refuse",
        ),
    ],
)
def test_a_bad_loop_file_is_refused_with_what_is_wrong_and_saves_nothing(logged_in, team, content, message):
    import json

    data = content if isinstance(content, bytes) else json.dumps(content).encode()
    response = logged_in.post(
        reverse("loops:loop-upload"), {"file": SimpleUploadedFile("loop.json", data)}, follow=True
    )
    assert response.status_code == 200 and message in response.content.decode()
    assert not Loop.objects.filter(team=team).exists()


@pytest.mark.django_db
def test_a_branch_whose_groups_nest_too_deep_is_a_form_error(logged_in, team):
    loop = Loop.objects.create(team=team, name="L", trigger_event_name="go")
    deep = {"match": "all", "rules": [{"field": "contact.email", "op": "contains", "value": "@"}]}
    for _ in range(4):
        deep = {"match": "any", "rules": [deep]}
    paths = paths_post([{"name": "Deep", "conditions": deep}, {"name": "The rest"}])
    response = logged_in.post(reverse("loops:step-new", args=[loop.pk]), {"kind": "branch", **paths})
    assert response.status_code == 400 and "Groups go at most 3 deep." in response.content.decode()
    assert not LoopStep.objects.filter(loop=loop).exists()


@pytest.mark.django_db
def test_a_rule_on_another_teams_mailing_list_is_refused(logged_in, team, other_team):
    theirs = MailingList.objects.create(team=other_team, name="Theirs")
    ours = MailingList.objects.create(team=team, name="Ours")
    loop = Loop.objects.create(team=team, name="L", trigger_event_name="go")
    rule = {"field": "lists", "op": "in_list", "value": str(theirs.pk)}
    paths = paths_post([{"name": "On it", "conditions": {"rules": [rule]}}, {"name": "The rest"}])
    response = logged_in.post(reverse("loops:step-new", args=[loop.pk]), {"kind": "branch", **paths})
    page = response.content.decode()
    assert response.status_code == 400 and "your team" in page
    assert "Theirs" not in page and f'<option value="{ours.pk}">Ours</option>' in page  # the lists to pick from
    assert not LoopStep.objects.filter(loop=loop).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"update_property": "not a key!", "update_value": "x"}, "A property name starts with a letter"),
        ({"update_property": "mrr", "update_value": "lots"}, "is not a number"),
    ],
)
def test_an_update_step_that_would_fail_every_run_is_refused(logged_in, team, fields, message):
    loop = Loop.objects.create(team=team, name="L", trigger_event_name="go")
    response = logged_in.post(
        reverse("loops:step-new", args=[loop.pk]), {"kind": "update_contact", "update_action": "set_property", **fields}
    )
    assert response.status_code == 400 and message in response.content.decode()
    assert not LoopStep.objects.filter(loop=loop).exists()


@pytest.mark.django_db
def test_duplicating_a_loop_whose_step_no_longer_validates_says_why(logged_in, team):
    loop = Loop.objects.create(team=team, name="L", trigger_event_name="go")
    chain_steps(loop, LoopStep(kind="email", subject="S", body="B", from_email="me@no-longer-verified.example"))
    page = logged_in.post(reverse("loops:loop-duplicate", args=[loop.pk]), follow=True).content.decode()
    assert "was not duplicated" in page and Loop.objects.filter(team=team).count() == 1


@pytest.mark.django_db
def test_a_bulk_add_to_a_list_starts_its_loops_once_per_contact(logged_in, team):
    newsletter = MailingList.objects.create(team=team, name="Newsletter")
    loop = Loop.objects.create(team=team, name="Welcome to the list", trigger="list_added", trigger_list=newsletter)
    chain_steps(loop, LoopStep(kind="email", subject="Hi", body="Hi"))
    loop_activate(loop=loop)
    contacts = [Contact.objects.create(team=team, email=f"l{n}@example.com") for n in range(3)]
    ListMembership.objects.create(team=team, mailing_list=newsletter, contact=contacts[0])  # on it already
    logged_in.post(reverse("contacts:bulk"), {"action": "add_to_list", "to_list": newsletter.pk})
    assert sorted(LoopRun.objects.filter(loop=loop).values_list("contact__email", flat=True)) == [
        "l1@example.com", "l2@example.com"
    ]  # fmt: skip
