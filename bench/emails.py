"""LoopSync email benchmark: N contacts each fire an event into an active one-email loop; how many
emails per second does one Celery worker (prefork, one process per core) deliver to a local SMTP sink,
against what the sink takes from a bare client (smtplib, one connection per process) in the same run?

Run from the project root: `make bench` (after the webhook benchmark) or `.venv/bin/python bench/emails.py`.
Everything listens on 127.0.0.1 and is stopped at the end. Exit 0 when it ran (target met or MISSED).
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG = "postgres://postgres@127.0.0.1:5432"
DB_NAME = "loopsync_bench_email"
REDIS_URL = "redis://127.0.0.1:6379/14"
QUEUE = "loopsync-bench-email"
TARGET_RATIO = 0.9  # the worker's emails/s over the sink's own rate, measured in the same run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_sink(path: str) -> tuple[int, float, float]:
    try:
        count, first, last = Path(path).read_text().split()
        return int(count), float(first), float(last)
    except (OSError, ValueError):
        return 0, 0.0, 0.0


def _send_bare(port: int, count: int, size: int) -> None:
    """One client process: `count` messages of about `size` bytes over one SMTP connection."""
    import smtplib
    from email.message import EmailMessage

    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        for i in range(count):
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = "bench@example.com", f"bare+{i}@example.com", "Bare"
            message.set_content("x" * size)
            client.send_message(message)


def sink_alone(port: int, countfile: str, emails: int, processes: int, size: int) -> float:
    """The sink's own rate: `processes` bare clients send `emails` in all; first → last message at the sink."""
    import multiprocessing

    before, _, _ = read_sink(countfile)
    share = [emails // processes + (1 if i < emails % processes else 0) for i in range(processes)]
    workers = [multiprocessing.Process(target=_send_bare, args=(port, n, size)) for n in share]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=600)
    deadline = time.time() + 30
    while time.time() < deadline:
        count, first, last = read_sink(countfile)
        if count - before >= emails:
            break
        time.sleep(0.2)
    return emails / (last - first) if last > first else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emails", type=int, default=3000)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args()

    smtp_port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"{PG}/{DB_NAME}",
        "DEBUG": "false",
        "SECRET_KEY": "bench-secret-key",
        "SITE_URL": "http://127.0.0.1:8000",
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_TASK_DEFAULT_QUEUE": QUEUE,
        "CONN_MAX_AGE": "600",
        # Production settings over plain HTTP on this machine: no redirect to HTTPS.
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_COOKIES": "false",
        "LOG_LEVEL": "WARNING",
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
        "DJANGO_SETTINGS_MODULE": "loopsync.settings",
    }
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    redis.Redis.from_url(REDIS_URL).flushdb()
    processes: list[subprocess.Popen] = []
    handle, countfile = tempfile.mkstemp(prefix="loopsync-sink-")
    os.close(handle)
    try:
        subprocess.run([str(BIN / "python"), "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        processes.append(
            subprocess.Popen([str(BIN / "python"), "bench/smtp_sink.py", str(smtp_port), countfile], cwd=ROOT, env=env)
        )
        concurrency = os.cpu_count() or 2
        time.sleep(1)  # the sink's start-up
        sink_rate = sink_alone(smtp_port, countfile, args.emails, concurrency, size=1500)
        print(f"The sink alone ({concurrency} bare smtplib clients, one connection each): {sink_rate:.0f} emails/s")
        # A second sink for the worker, so that its first → last is its own.
        processes.pop().terminate()
        smtp_port = free_port()
        env["EMAIL_URL"] = f"smtp://127.0.0.1:{smtp_port}"
        os.unlink(countfile)
        handle, countfile = tempfile.mkstemp(prefix="loopsync-sink-")
        os.close(handle)
        processes.append(
            subprocess.Popen([str(BIN / "python"), "bench/smtp_sink.py", str(smtp_port), countfile], cwd=ROOT, env=env)
        )
        print(f"Firing {args.emails} events (no worker running yet) …", flush=True)
        setup = subprocess.run(
            [str(BIN / "python"), "-c", SETUP, str(args.emails)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        print(setup.stdout.strip())
        started = time.time()
        processes.append(
            subprocess.Popen(
                [
                    str(BIN / "celery"),
                    "-A",
                    "loopsync",
                    "worker",
                    "-Q",
                    QUEUE,
                    "--loglevel=WARNING",
                    f"--concurrency={concurrency}",
                ],
                cwd=ROOT,
                env=env,
                start_new_session=True,
            )
        )
        deadline = time.time() + 600
        count = 0
        while time.time() < deadline:
            count, first, last = read_sink(countfile)
            if count >= args.emails:
                break
            time.sleep(0.2)
        wall = last - started
        with psycopg.connect(f"{PG}/{DB_NAME}") as conn:
            statuses = dict(conn.execute("SELECT status, count(*) FROM loops_emailmessage GROUP BY status").fetchall())
            # The worker's first piece of work: the first run it advanced (which queued an email).
            (first_run,) = conn.execute(
                "SELECT extract(epoch FROM min(updated_at)) FROM loops_looprun WHERE status = 'completed'"
            ).fetchone()
        print(f"\nEmails delivered to the SMTP sink: {count} of {args.emails}; rows by status: {statuses}")
        if count < args.emails:
            print("MISSED: not every email arrived within the time limit")
            return 1
        pipeline = last - float(first_run)
        rate = count / pipeline
        print(f"One worker, prefork concurrency {concurrency} (each email: advance the run, render, queue, send):")
        print(f"  worker start -> first run advanced:        {float(first_run) - started:.2f} s (boot)")
        print(f"  first run advanced -> last email received: {pipeline:.2f} s -> {rate:.0f} emails/s")
        print(
            f"  first -> last email at the sink:           {last - first:.2f} s -> "
            f"{count / (last - first):.0f} emails/s"
        )
        print(f"  worker start -> last email (with boot):    {wall:.2f} s -> {count / wall:.0f} emails/s")
        ratio = rate / sink_rate if sink_rate else 0.0
        verdict = "met" if ratio >= TARGET_RATIO else "MISSED"
        print(
            f"\nSummary: emails {rate:.0f}/s (first run advanced -> last email), the sink alone {sink_rate:.0f}/s: "
            f"{ratio:.2f}x   target >= {TARGET_RATIO}x the sink: {verdict}"
        )
        return 0
    finally:
        for process in reversed(processes):
            with_group = process.args[0].endswith("celery")
            try:
                if with_group:
                    os.killpg(process.pid, signal.SIGTERM)
                else:
                    process.terminate()
                process.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                process.kill()
        os.unlink(countfile)
        if not args.keep:
            with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        redis.Redis.from_url(REDIS_URL).flushdb()


# Runs in a child process with the benchmark's settings: a team, N contacts, one active loop with
# one email step, then N fired events (each enrols its contact and enqueues the run).
SETUP = """
import sys, time
import django
django.setup()
from accounts.services import team_create
from contacts.models import Contact
from loops.models import Loop, LoopStep
from loops.services import event_fire, loop_activate

n = int(sys.argv[1])
team = team_create(name="Bench")
loop = Loop.objects.create(team=team, name="Bench loop", trigger_event_name="benchEvent")
LoopStep.objects.create(
    team=team, loop=loop, kind="email",
    subject="Thanks {{ contact.first_name | default: 'there' }}: {{ event.amount_formatted }}",
    preview_text="Your receipt", body="Hi {{ contact.first_name }},\\n\\nWe got **{{ event.amount_formatted }}**.\\n\\n"
    "[View invoice]({{ event.hosted_invoice_url }}){.button}",
)
loop_activate(loop=loop)
contacts = Contact.objects.bulk_create(
    Contact(team=team, email=f"bench+{i}@example.com", first_name=f"Name{i}", source="bench") for i in range(n)
)
started = time.perf_counter()
for i, contact in enumerate(contacts):
    event_fire(team=team, contact=contact, name="benchEvent", idempotency_key=f"evt_bench_{i}",
               properties={"amount_formatted": "$19.00", "hosted_invoice_url": "https://invoice.stripe.com/i/1"})
print(f"fired {n} events in {time.perf_counter() - started:.1f} s")
"""


if __name__ == "__main__":
    sys.exit(main())
