"""Changing an active loop's tree while runs are under way: a run never does a step twice, never misses one ahead
of it, and a step added behind it is not sent to it late (loops.services.graph)."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone

from conftest import chain_steps, main_line
from contacts.models import Contact, MailingList
from loops.models import Loop, LoopRun, LoopStep, step_key
from loops.selectors import loop_outline
from loops.services import (
    event_fire,
    loop_activate,
    loop_export,
    loop_import,
    step_insert,
    step_move,
    step_remove,
)
from loops.services.runs import runs_advance_due

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager(run_tasks):
    """Tasks run in this process, at commit, as `make run` does."""
    return run_tasks


def email(subject: str) -> LoopStep:
    return LoopStep(kind="email", subject=subject, body="Hi")


@pytest.fixture
def loop(team):
    """Active: email "A", a one-hour timer, email "C"."""
    loop = Loop.objects.create(team=team, name="Line", trigger_event_name="go")
    chain_steps(loop, email("A"), LoopStep(kind="timer", delay_value=1, delay_unit="hours"), email("C"))
    return loop_activate(loop=loop)


def start(eager, team, n: int) -> Contact:
    contact = Contact.objects.create(team=team, email=f"c{n}@example.com")
    eager(event_fire, team=team, contact=contact, name="go", idempotency_key=f"go-{n}")
    return contact


def after_the_timer(eager) -> None:
    with time_machine.travel(timezone.now() + timedelta(hours=1, minutes=1)):
        eager(runs_advance_due)


def subjects(mailoutbox, contact) -> list[str]:
    return [m.subject for m in mailoutbox if m.to == [contact.email]]


def test_a_step_added_behind_a_waiting_run_is_not_sent_to_it_and_one_ahead_is(eager, team, loop, mailoutbox):
    first, timer, _ = main_line(loop)
    waiting = start(eager, team, 1)
    assert LoopRun.objects.get(contact=waiting).status == "waiting"
    step_insert(loop=loop, step=email("Behind"), parent=first)  # between A and the timer: behind the run
    step_insert(loop=loop, step=email("Ahead"), parent=timer)  # between the timer and C
    fresh = start(eager, team, 2)  # enrolled after the change: does all of it
    after_the_timer(eager)
    assert subjects(mailoutbox, waiting) == ["A", "Ahead", "C"]
    assert subjects(mailoutbox, fresh) == ["A", "Behind", "Ahead", "C"]
    assert set(LoopRun.objects.values_list("status", flat=True)) == {"completed"}
    counts = {
        row["step"].subject or row["step"].kind: row["counts"]
        for row in loop_outline(loop=loop)
        if row["type"] == "step"
    }
    assert counts["Behind"]["passed"] == 1 and counts["Behind"]["entered"] == 1  # the fresh run only
    assert counts["Ahead"]["passed"] == 2 and counts["A"]["passed"] == 2


def test_removing_the_step_a_run_waits_in_moves_it_on_at_once(eager, team, loop, mailoutbox):
    _, timer, _ = main_line(loop)
    contact = start(eager, team, 1)
    removal = step_remove(step=timer)
    assert (removal.steps, removal.runs_moved) == (1, 1)
    eager(runs_advance_due)
    assert subjects(mailoutbox, contact) == ["A", "C"]
    assert [step.subject for step in main_line(loop)] == ["A", "C"]


@pytest.mark.parametrize("move", ["C up", "timer down"])
def test_reordering_around_a_waiting_run_neither_skips_nor_repeats(eager, team, loop, mailoutbox, move):
    first, timer, last = main_line(loop)
    contact = start(eager, team, 1)  # sent A, waits in the timer
    assert step_move(step=last, offset=-1) if move == "C up" else step_move(step=timer, offset=1)
    assert [s.pk for s in main_line(loop)] == [first.pk, last.pk, timer.pk]
    after_the_timer(eager)  # the timer it was in ends; then C, which is now before it, still comes
    assert subjects(mailoutbox, contact) == ["A", "C"]
    assert LoopRun.objects.get(contact=contact).status == "completed"


def test_removing_a_branch_stops_the_runs_inside_it_and_says_so(eager, team, mailoutbox):
    loop = loop_import(
        team=team,
        spec={
            "name": "Branching",
            "trigger": {"type": "event", "event": "go"},
            "nodes": [
                {
                    "id": "b",
                    "type": "branch",
                    "paths": [
                        {
                            "name": "Everyone with an email",
                            "conditions": {"rules": [{"field": "contact.email", "op": "contains", "value": "@"}]},
                        },
                        {"name": "The rest", "conditions": None},
                    ],
                },
                {"id": "t", "type": "timer", "delay": {"value": 1, "unit": "hours"}},
                {"id": "e", "type": "email", "subject": "After", "body": "Hi"},
            ],
            "edges": [{"from": "b", "to": "t"}, {"from": "t", "to": "e"}],
        },
    )
    loop_activate(loop=loop)
    contact = start(eager, team, 1)
    branch = LoopStep.objects.get(loop=loop, kind="branch")
    removal = step_remove(step=branch)
    assert (removal.steps, removal.runs_stopped) == (3, 1)
    run = LoopRun.objects.get(contact=contact)
    assert run.status == "stopped" and "removed" in run.history[-1]["what"]
    after_the_timer(eager)
    assert mailoutbox == [] and not LoopStep.objects.filter(loop=loop).exists()


def test_export_import_export_gives_the_same_json(team, make_loop):
    exported = loop_export(loop=make_loop(team, "stripe-payment-failed", activate=False))
    again = loop_export(loop=loop_import(team=team, spec=exported))
    assert {**again, "name": exported["name"]} == exported
    assert again["name"] == "Stripe - Payment Failed (2)"  # names are unique in a team


def test_loop_export_and_import_commands_round_trip(team, make_loop, tmp_path):
    import io

    from django.core.management import call_command

    make_loop(team, "stripe-subscription-canceled", activate=False)
    out = io.StringIO()
    call_command("loop_export", "--team", team.name, "--name", "stripe - subscription canceled", stdout=out)
    exported = json.loads(out.getvalue())
    assert exported["frequency"] == {"type": "every"} and [n["type"] for n in exported["nodes"]] == [
        "timer",
        "filter",
        "email",
    ]
    path = tmp_path / "loop.json"
    path.write_text(out.getvalue())
    printed = io.StringIO()
    call_command("loop_import", str(path), "--team", str(team.pk), stdout=printed)
    new_id = int(printed.getvalue().strip().splitlines()[-1])
    imported = Loop.objects.get(pk=new_id, team=team)
    assert imported.status == "draft" and loop_export(loop=imported) == {**exported, "name": imported.name}


def test_an_import_with_an_unknown_field_is_refused_and_saves_nothing(team):
    spec = {
        "name": "Bad",
        "trigger": {"type": "event", "event": "go"},
        "nodes": [
            {
                "id": "f",
                "type": "filter",
                "conditions": {
                    "rules": [{"field": "contact.properties.favourite_colour", "op": "equals", "value": "red"}]
                },
            }
        ],
        "edges": [],
    }
    with pytest.raises(ValidationError, match="Unknown field .contact.properties.favourite_colour."):
        loop_import(team=team, spec=spec)
    assert not Loop.objects.filter(team=team).exists()


def test_a_step_inserted_before_the_one_a_run_has_yet_to_start_is_sent_to_it(eager, team, loop, mailoutbox):
    """A run whose turn ran out after A is left at the timer it has yet to start, due now (as runs._execute leaves
    it): a step put just before the timer is ahead of it, not behind."""
    first, timer, _ = main_line(loop)
    contact = Contact.objects.create(team=team, email="turn@example.com")
    run = LoopRun.objects.create(
        team=team, loop=loop, contact=contact, step=timer, passed={step_key(first.id): timezone.now().isoformat()},
        status=LoopRun.Status.ACTIVE, next_due_at=timezone.now(),
    )  # fmt: skip
    between = step_insert(loop=loop, step=email("Between"), parent=first)
    assert step_key(between.id) not in LoopRun.objects.get(pk=run.pk).passed
    assert LoopRun.objects.get(pk=run.pk).step_id == between.id  # "here now" at the step it does next
    eager(runs_advance_due)
    assert LoopRun.objects.get(pk=run.pk).status == "waiting"  # in the timer now
    assert subjects(mailoutbox, contact) == ["Between"]  # before the timer, not after it
    step_insert(loop=loop, step=email("Late"), parent=main_line(loop)[1])  # just before the timer it is in
    after_the_timer(eager)
    assert subjects(mailoutbox, contact) == ["Between", "C"]


def test_a_loops_json_names_its_mailing_lists_so_it_works_in_another_team(team, other_team):
    ours = MailingList.objects.create(team=team, name="VIP")
    loop = Loop.objects.create(team=team, name="Lists", trigger_event_name="go")
    tree = {"match": "all", "rules": [{"field": "lists", "op": "in_list", "value": str(ours.pk)}]}
    chain_steps(loop, LoopStep(kind="filter", conditions=tree), email("A"))
    spec = loop_export(loop=loop)
    assert spec["nodes"][0]["conditions"]["rules"][0]["value"] == "VIP"
    with pytest.raises(ValidationError, match="no mailing list is named “VIP” in this team"):
        loop_import(team=other_team, spec=spec)
    theirs = MailingList.objects.create(team=other_team, name="VIP")
    imported = loop_import(team=other_team, spec=spec)
    assert main_line(imported)[0].conditions["rules"][0]["value"] == str(theirs.pk)
    assert json.dumps(loop_export(loop=imported), sort_keys=True) == json.dumps(spec, sort_keys=True)
