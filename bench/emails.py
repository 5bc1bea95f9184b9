"""LoopSync email benchmark: N contacts each fire an event into an active one-email loop; how many
emails per second does one Celery worker (prefork, one process per core) deliver to a local SMTP sink?

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
TARGET_PER_S = 300.0


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
        concurrency = os.cpu_count() or 2
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
        sink_rate = count / (last - first)
        print(f"  first -> last email at the sink:           {last - first:.2f} s -> {sink_rate:.0f} emails/s")
        print(f"  worker start -> last email (with boot):    {wall:.2f} s -> {count / wall:.0f} emails/s")
        verdict = "met" if rate >= TARGET_PER_S else "MISSED"
        print(f"  target >= {TARGET_PER_S:.0f} emails/s (first run advanced -> last email): {verdict}")
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
    team=team, loop=loop, position=1, kind="email",
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
