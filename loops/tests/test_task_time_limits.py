"""Celery's time limits: every task has them, and a drain stopped by the soft limit loses nothing. What
it claimed is released (or, at worst, taken again when its lease runs out), and the task ends cleanly."""

import contextlib
import json
import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
import time_machine
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings as django_settings
from django.utils import timezone

from accounts.services import team_create
from conftest import chain_steps, fixture_text, livemode
from contacts.models import Contact
from loops import liquid_environment, rendering
from loops.models import EmailMessage, Event, Loop, LoopRun, LoopStep
from loops.render_limits import RENDER_WALL_FACTOR
from loops.services import event_fire, loop_activate, runs, sending
from loops.tasks import drain_emails, drain_runs
from loopsync.celery import app as celery_app
from webhooks.models import Delivery
from webhooks.services import batching, processing
from webhooks.tasks import drain_deliveries

pytestmark = pytest.mark.django_db


@contextlib.contextmanager
def soft_time_limit(seconds: float):
    """What Celery's prefork pool does once a task passes CELERY_TASK_SOFT_TIME_LIMIT: a signal whose
    handler raises SoftTimeLimitExceeded in the task, wherever it is."""

    def handler(signum, frame):
        raise SoftTimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_every_task_has_time_limits_beyond_what_a_drain_may_take():
    soft = django_settings.CELERY_TASK_SOFT_TIME_LIMIT
    assert celery_app.conf.task_soft_time_limit == soft == 120
    assert celery_app.conf.task_time_limit == django_settings.CELERY_TASK_TIME_LIMIT == 150
    # A drain hands over after its budget, but finishes the batch it started. A batch of runs starts no
    # run past its own budget; the run in progress ends its turn after RUN_TURN_SECONDS and the render
    # under way, which ends within RENDER_WALL_FACTOR times LIQUID_RENDER_TIMEOUT on the clock. (Not 50
    # renders: one run may render up to MAX_STEPS_PER_ADVANCE emails.)
    render = RENDER_WALL_FACTOR * django_settings.LIQUID_RENDER_TIMEOUT
    longest_batch = runs.batch_budget_seconds() + runs.RUN_TURN_SECONDS + render
    assert runs.DRAIN_BUDGET_SECONDS + longest_batch <= soft / 2
    for budget in (sending.DRAIN_BUDGET_SECONDS, processing.DRAIN_BUDGET_SECONDS):
        assert budget < soft / 2
    assert soft < django_settings.CELERY_TASK_TIME_LIMIT


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"CELERY_TASK_SOFT_TIME_LIMIT": "200", "CELERY_TASK_TIME_LIMIT": "100"}, "must be above 0 and below"),
        ({"LIQUID_LOOP_LIMIT": "0"}, "LIQUID_LOOP_LIMIT=0 must be above 0"),
        ({"LIQUID_NESTING_LIMIT": "500"}, "LIQUID_NESTING_LIMIT=500 must be from 1 to 100"),
        ({"EMAIL_HTML_LIMIT": "0"}, "EMAIL_HTML_LIMIT=0 must be above 0"),
        ({"LIQUID_RENDER_TIMEOUT": "10"}, "LIQUID_RENDER_TIMEOUT=10 must be at most a twentieth"),
    ],
)
def test_a_bad_limit_stops_start_up_with_a_message(environment, message):
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "loopsync.settings", "DEBUG": "true", **environment},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and message in result.stderr


# --- runs ----------------------------------------------------------------------------------------


def test_runs_stopped_by_the_soft_limit_mid_render_are_released_and_advanced_later(team, settings, tasks_published):
    loop = Loop.objects.create(team=team, name="Welcome", trigger_event_name="signedUp")
    # For a contact marked slow, a render that would go on for minutes: the loop limit and the render
    # deadline are raised for it, so only the task's time limit stops it.
    body = (
        "Hi {% if contact.properties.slow %}"
        "{% for i in (1..100000000) %}{% assign x = i | plus: 1 %}{% endfor %}{% endif %}"
    )
    LoopStep.objects.create(team=team, loop=loop, kind="email", subject="Hi", body=body)
    loop_activate(loop=loop)
    for email, slow in (("quick@example.com", False), ("slow@example.com", True)):
        contact = Contact.objects.create(team=team, email=email, properties={"slow": slow})
        event_fire(team=team, contact=contact, name="signedUp", idempotency_key=email)
    settings.LIQUID_LOOP_LIMIT, settings.LIQUID_RENDER_TIMEOUT = 10**9, 60

    with soft_time_limit(0.5):
        assert drain_runs() == 0  # returns: the task does not fail

    # The batch's transaction was undone (no email, nothing failed) and its runs are due again now.
    assert not EmailMessage.objects.exists()
    assert set(LoopRun.objects.values_list("status", flat=True)) == {"active"}
    assert all(run.next_due_at <= timezone.now() for run in LoopRun.objects.all())
    settings.LIQUID_LOOP_LIMIT, settings.LIQUID_RENDER_TIMEOUT = 10_000, 1.0
    runs.runs_drain()
    assert LoopRun.objects.get(contact__email="quick@example.com").status == "completed"
    slow = LoopRun.objects.get(contact__email="slow@example.com")
    assert slow.status == "failed" and "(LIQUID_LOOP_LIMIT)" in slow.last_error
    assert list(EmailMessage.objects.values_list("to_email", "status")) == [("quick@example.com", "queued")]


# About 0.1 s to render on a typical machine, well inside every limit: one team's ordinary but costly email.
COSTLY = "Hi {{ contact.first_name }} {% for i in (1..3000) %}{% cycle " + ", ".join(["'a'"] * 40) + " %}{% endfor %}"


def test_one_teams_costly_runs_never_hold_back_another_teams(team, settings, tasks_published):
    """A run may render up to MAX_STEPS_PER_ADVANCE emails, each within its own budget, and a batch of
    runs was one transaction: together they took longer than the soft limit, which undid the batch, and
    so on for ever; the other teams' runs in it never advanced."""
    settings.CELERY_TASK_SOFT_TIME_LIMIT = 4  # stands for 120 s, as 100 costly steps stand for many more
    hostile = Loop.objects.create(team=team, name="Costly", trigger_event_name="go")
    first = LoopStep(team=team, loop=hostile, kind="email", subject="Hi", body=COSTLY)
    first.full_clean()  # it passes the save check
    chain_steps(
        hostile,
        first,
        *(LoopStep(kind="email", subject="Hi", body=COSTLY) for _ in range(2, runs.MAX_STEPS_PER_ADVANCE + 1)),
    )
    loop_activate(loop=hostile)
    innocent_team = team_create(name="Innocent")
    innocent = Loop.objects.create(team=innocent_team, name="Welcome", trigger_event_name="signedUp")
    LoopStep.objects.create(team=innocent_team, loop=innocent, kind="email", subject="Hi", body="Hello")
    loop_activate(loop=innocent)
    costly = Contact.objects.create(team=team, email="costly@example.com")
    event_fire(team=team, contact=costly, name="go", idempotency_key="costly")  # due first
    victim = Contact.objects.create(team=innocent_team, email="victim@example.com")
    event_fire(team=innocent_team, contact=victim, name="signedUp", idempotency_key="victim")

    for _ in range(2):
        with soft_time_limit(settings.CELERY_TASK_SOFT_TIME_LIMIT):
            drain_runs()

    assert EmailMessage.objects.filter(to_email="victim@example.com").exists()
    assert LoopRun.objects.get(contact=victim).status == "completed"
    run = LoopRun.objects.get(contact=costly)  # advanced a turn at a time, continued later
    done = len(run.passed)
    assert run.status == "active" and 1 <= done < runs.MAX_STEPS_PER_ADVANCE - 1
    assert EmailMessage.objects.filter(to_email="costly@example.com").count() == done


def test_a_batch_past_its_budget_commits_what_it_did_and_puts_the_rest_back_due(team, make_loop, tasks_published):
    loop = make_loop(team)
    for i in range(3):
        contact = Contact.objects.create(team=team, email=f"c{i}@example.com")
        event_fire(team=team, contact=contact, name=loop.trigger_event_name, idempotency_key=contact.email)
    claimed = runs.runs_claim()
    assert len(claimed) == 3
    advanced = runs._advance_batch(claimed, budget_seconds=0)  # past it after the first run
    assert [run.id for run in advanced] == claimed[:1]
    first, *rest = (LoopRun.objects.get(id=run_id) for run_id in claimed)
    assert [entry["what"] for entry in first.history][-1] == "waiting for event"  # its turn was committed
    for run in rest:  # as they were, and due
        assert [entry["what"] for entry in run.history] == ["enrolled"]
        assert run.status == "active" and run.next_due_at <= timezone.now()
    assert runs.runs_claim() == claimed[1:]  # taken again at once (the first waits on its loop's timer)


def test_the_soft_limit_while_a_template_is_parsed_ends_the_task_and_fails_no_run(team, monkeypatch, tasks_published):
    """python-liquid turned any exception while parsing into "unexpected liquid parsing error", the
    task's SoftTimeLimitExceeded too: the run failed for good and the drain carried on past its limit."""
    loop = Loop.objects.create(team=team, name="Welcome", trigger_event_name="go")
    LoopStep.objects.create(team=team, loop=loop, kind="email", subject="Hi", body="Hello {{ contact.email }}")
    loop_activate(loop=loop)
    contact = Contact.objects.create(team=team, email="ada@example.com")
    event_fire(team=team, contact=contact, name="go", idempotency_key="ada")
    rendering._parsed.clear()
    real = liquid_environment.lexer_problem

    def lexer_problem(source):  # the limit's signal lands while the body is being parsed
        if source.startswith("Hello"):
            raise SoftTimeLimitExceeded()
        return real(source)

    monkeypatch.setattr(liquid_environment, "lexer_problem", lexer_problem)
    assert drain_runs() == 0  # the task ended: it did not carry on
    run = LoopRun.objects.get()
    assert (run.status, run.last_error) == ("active", "")
    assert run.next_due_at <= timezone.now()
    monkeypatch.setattr(liquid_environment, "lexer_problem", real)
    runs.runs_drain()
    assert LoopRun.objects.get().status == "completed"


# --- emails --------------------------------------------------------------------------------------


def _queued(team, subject: str = "Hi") -> EmailMessage:
    contact = Contact.objects.get_or_create(team=team, email="ada@example.com")[0]
    return EmailMessage.objects.create(
        team=team, contact=contact, to_email=contact.email, from_email="a@example.com", subject=subject,
        html_body="<p>x</p>", text_body="x", next_attempt_at=timezone.now(),
    )  # fmt: skip


@pytest.mark.parametrize("where", ["loops.services.sending._build", "django.core.mail.backends.smtp.EmailBackend.open"])
def test_an_email_stopped_by_the_soft_limit_before_its_send_goes_back_to_the_queue(
    team, smtp_server, monkeypatch, tasks_published, where
):
    """Only a send the provider may have taken has an unknown outcome. Stopped before it (building the
    message, connecting), the email was never sent: it is queued again, not failed."""
    message = _queued(team)

    def interrupted(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(where, interrupted)
    assert drain_emails() == 0
    message.refresh_from_db()
    assert (message.status, message.attempts, message.error) == ("queued", 0, "")
    assert message.next_attempt_at <= timezone.now()
    monkeypatch.undo()
    with time_machine.travel(timezone.now() + timedelta(hours=1)):
        sending.emails_sweep()  # a stale claim would be failed here
        sending.emails_drain()
    message.refresh_from_db()
    assert message.status == "sent"
    assert [m["Subject"] for m in smtp_server.messages] == ["Hi"]


def test_emails_stopped_by_the_soft_limit_mid_send_are_never_sent_twice_and_the_rest_go_later(
    team, smtp_server, tasks_published
):
    contact = Contact.objects.create(team=team, email="ada@example.com")
    for subject in ("First", "Second", "Third"):
        EmailMessage.objects.create(
            team=team, contact=contact, to_email=contact.email, from_email="a@example.com", subject=subject,
            html_body="<p>x</p>", text_body="x", next_attempt_at=timezone.now(),
        )  # fmt: skip
    smtp_server.delay = 5  # the server takes the first message, then is slow to answer

    with soft_time_limit(0.5):
        assert drain_emails() == 0

    first, second, third = EmailMessage.objects.order_by("id")
    # Whether the provider has the first is unknown: failed, never sent again.
    assert (first.status, first.error) == ("failed", sending.INTERRUPTED_SEND)
    # The others were reserved but not started: due again now, for the next drain.
    assert [(m.status, m.next_attempt_at <= timezone.now()) for m in (second, third)] == [("queued", True)] * 2
    smtp_server.delay = 0
    sending.emails_drain()
    assert sorted(m["Subject"] for m in smtp_server.messages) == ["First", "Second", "Third"]
    assert list(EmailMessage.objects.order_by("id").values_list("status", flat=True)) == ["failed", "sent", "sent"]


# --- webhook deliveries --------------------------------------------------------------------------


def test_deliveries_stopped_by_the_soft_limit_are_released_not_failed(
    team, make_endpoint, post_webhook, monkeypatch, tasks_published
):
    endpoint = make_endpoint(team, triggers={"customer.created": "newStripeCustomer"})
    template = json.loads(livemode(fixture_text("dj-stripe/customer.created.with_name.json")))
    for i in range(2):
        event = {**template, "id": f"evt_{i}"}
        event["data"] = {"object": {**template["data"]["object"], "email": f"c{i}@example.com"}}
        assert post_webhook(endpoint, json.dumps(event)).status_code == 200
    real_fire = batching.events_fire_many

    def fire_until_the_limit(*, fires):
        # The limit's signal can land anywhere; here, as the batch fires the second delivery's event.
        if any(fire.idempotency_key == "evt_1" for fire in fires):
            raise SoftTimeLimitExceeded()
        return real_fire(fires=fires)

    monkeypatch.setattr(batching, "events_fire_many", fire_until_the_limit)
    assert drain_deliveries() == 0

    # The batch was undone and released for a retry, none of it marked failed.
    assert set(Delivery.objects.values_list("status", flat=True)) == {"received"}
    assert all("SoftTimeLimitExceeded" in d.last_error for d in Delivery.objects.all())
    assert not Contact.objects.exists() and not Event.objects.exists()
    monkeypatch.setattr(batching, "events_fire_many", real_fire)
    with time_machine.travel(timezone.now() + timedelta(minutes=1)):  # past the retry's backoff
        processing.deliveries_drain()
    assert set(Delivery.objects.values_list("status", flat=True)) == {"processed"}
    assert Event.objects.count() == 2
