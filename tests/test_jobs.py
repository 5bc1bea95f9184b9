"""loopsync.jobs, the mechanics every long job shares (a Stripe sync, a contact import): a claim with a fresh id
and a lease, saves that hold only while the claim is ours, the sweep of lost jobs, the hand-over after a turn."""

import zlib
from datetime import datetime, timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from contacts.models import ContactImport
from loopsync import jobs, work

pytestmark = pytest.mark.django_db

TASK = "tests.run_a_job"
JOBS = jobs.Jobs(ContactImport, task=TASK, stale_after=timedelta(minutes=3), label="Test job")


@pytest.fixture
def enqueued(monkeypatch):
    """The tasks published, by name and arguments (the broker is the edge that leaves the machine)."""
    sent: list[tuple] = []
    monkeypatch.setattr(work, "enqueue", lambda name, *args: sent.append((name, *args)) or True)
    return sent


def job(team, **values) -> ContactImport:
    row = ContactImport.objects.create(team=team, filename="a.csv", data=zlib.compress(b"Email\na@b.c\n"))
    values.setdefault("status", "queued")
    ContactImport.objects.filter(pk=row.pk).update(**values)
    return ContactImport.objects.get(pk=row.pk)


def ago(**delta) -> datetime:
    return timezone.now() - timedelta(**delta)


def test_a_queued_job_is_claimed_by_one_worker_and_a_live_claim_is_not_taken(team):
    row = job(team)
    claim = JOBS.claim(row.pk)
    assert claim is not None and JOBS.claim(row.pk) is None
    row.refresh_from_db()
    assert (row.status, row.claim) == ("running", claim) and row.heartbeat_at > ago(seconds=5)


@pytest.mark.parametrize("status", ["mapping", "done", "failed"])
def test_a_job_that_is_not_queued_or_running_is_not_claimed(team, status):
    row = job(team, status=status, heartbeat_at=ago(hours=1))
    assert JOBS.claim(row.pk) is None
    assert ContactImport.objects.get(pk=row.pk).status == status


def test_a_stale_claim_is_taken_over_and_the_worker_given_up_on_saves_nothing(team):
    row = job(team)
    first = JOBS.claim(row.pk)
    JOBS.save(row.pk, first, done=10)
    ContactImport.objects.filter(pk=row.pk).update(heartbeat_at=ago(minutes=3))  # its worker went quiet
    second = JOBS.claim(row.pk)
    assert second is not None and second != first
    with pytest.raises(jobs.Lost):
        JOBS.save(row.pk, first, done=20)  # its heartbeat, from a claim it lost
    with pytest.raises(jobs.Lost):
        JOBS.save(row.pk, first, status="done")
    row.refresh_from_db()
    assert (row.status, row.done, row.claim) == ("running", 10, second)
    JOBS.save(row.pk, second, done=30)
    assert ContactImport.objects.get(pk=row.pk).done == 30


def test_a_heartbeat_saves_progress_and_a_turns_end_its_status_and_error(team):
    row = job(team, last_error="Paused earlier")
    claim = JOBS.claim(row.pk)
    ContactImport.objects.filter(pk=row.pk).update(heartbeat_at=ago(minutes=2))
    JOBS.save(row.pk, claim, done=5, created=4)
    row.refresh_from_db()
    assert (row.status, row.done, row.created, row.last_error) == ("running", 5, 4, "Paused earlier")
    assert row.heartbeat_at > ago(seconds=5)
    JOBS.save(row.pk, claim, status="queued", error="Paused on a database error" * 100)
    row.refresh_from_db()
    assert (row.status, len(row.last_error), row.finished_at) == ("queued", 2000, None)
    assert JOBS.claim(row.pk) is not None  # a fresh task takes it up again
    JOBS.save(row.pk, ContactImport.objects.get(pk=row.pk).claim, status="done")
    row.refresh_from_db()
    assert (row.status, row.last_error) == ("done", "") and row.finished_at > ago(seconds=5)


def test_the_sweep_sends_again_the_jobs_whose_task_was_lost_and_only_those(team, enqueued):
    lost = [
        job(team, heartbeat_at=ago(minutes=2)),  # handed over, and the fresh task never came
        job(team, created_at=ago(minutes=2)),  # queued, never taken
        job(team, status="running", heartbeat_at=ago(minutes=4)),  # its worker died
    ]
    job(team, heartbeat_at=ago(seconds=10))  # handed over just now: its task is on the way
    job(team)  # just queued
    job(team, status="running", heartbeat_at=ago(minutes=2))  # its worker is at it
    job(team, status="done", heartbeat_at=ago(hours=1))
    job(team, status="mapping", created_at=ago(hours=1))
    assert JOBS.sweep() == 3
    assert sorted(enqueued) == sorted((TASK, row.pk) for row in lost)


def test_a_task_hands_over_to_a_fresh_one_only_when_its_turn_ran_out(enqueued, caplog):
    assert JOBS.task_run(7, lambda: "queued") == "queued"
    assert JOBS.task_run(8, lambda: "done") == "done"
    assert JOBS.task_run(9, lambda: "") == ""  # another worker holds it

    def database_gone() -> str:
        raise OperationalError("the database went away")

    assert JOBS.task_run(10, database_gone) == "running"  # the sweep resumes it once its heartbeat is stale
    assert enqueued == [(TASK, 7)]
    assert "Test job 10 stopped on a temporary error" in caplog.text


def test_a_turn_ends_at_its_deadline_and_an_unbounded_one_never():
    assert jobs.past(jobs.deadline(0)) and not jobs.past(jobs.deadline(60)) and not jobs.past(jobs.deadline(None))
