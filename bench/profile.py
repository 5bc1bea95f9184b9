"""Where the CPU of one webhook, and of one email, goes: the receive path, the bare reference and the drain;
then advancing a one-email loop's runs, sending their emails to a local SMTP sink, and a bare smtplib client
sending as many to the same sink, all in this process.

No server, no network: each webhook is a WSGI call on `loopsync.wsgi.application` (the production entry, fast
path included) and on `bench/reference_app.application`; the drain is `deliveries_drain()` over what was
received. Prints CPU ms per request (or event) of this process only, then pyinstrument's flat profile of each
(functions by their own time). PostgreSQL's share is not in these figures: bench/run.py measures it.

    .venv/bin/python bench/profile.py                 # 2000 webhooks
    .venv/bin/python bench/profile.py --events 5000 --top 30
    .venv/bin/python bench/profile.py --emails 3000       # and 3000 emails (0: none, the default)

Uses its own database, loopsync_bench_profile (dropped afterwards), and bench/run.py's Redis db 15 for the
wake-ups (emptied afterwards): run it when the webhook benchmark is not running.
"""

import argparse
import io
import json
import os
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path[:0] = [str(ROOT), str(BENCH_DIR)]

import run as bench  # noqa: E402 - bench/run.py: the same events, secrets and settings

DB_NAME = "loopsync_bench_profile"
DB_URL = f"{bench.PG}/{DB_NAME}"


def environ(path: str, item: bench.Signed) -> dict:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8101",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "CONTENT_TYPE": "application/json; charset=utf-8",
        "CONTENT_LENGTH": str(len(item.body)),
        "HTTP_STRIPE_SIGNATURE": item.signature,
        "HTTP_HOST": "127.0.0.1:8101",
        "wsgi.input": io.BytesIO(item.body),
        "wsgi.errors": sys.stderr,
    }


def call(application, path: str, item: bench.Signed) -> None:
    statuses = []
    b"".join(application(environ(path, item), lambda status, headers, exc_info=None: statuses.append(status)))
    if not statuses[0].startswith("200"):
        raise SystemExit(f"{path}: {statuses[0]}")


def flat_profile(job, top: int) -> str:
    """pyinstrument's flat profile of `job()`: the functions where the time was spent, by their own time."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0002)
    profiler.start()
    job()
    profiler.stop()
    lines = profiler.output_text(flat=True, unicode=True, color=False).splitlines()
    kept = [line for line in lines if line.strip() and not line.lstrip().startswith(("_", "Recorded", "Program"))]
    return "\n".join(kept[:top])


def timed(job) -> float:
    started = time.process_time()
    job()
    return time.process_time() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--top", type=int, default=20, help="lines of each flat profile (default 20)")
    parser.add_argument("--emails", type=int, default=0, help="also profile this many emails (default 0)")
    args = parser.parse_args()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        smtp_port = sock.getsockname()[1]
    os.environ.update(
        {
            **bench.ENV,
            "DATABASE_URL": DB_URL,
            "DJANGO_SETTINGS_MODULE": "loopsync.settings",
            "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
        }
    )
    with psycopg.connect(f"{bench.PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        with psycopg.connect(DB_URL, autocommit=True) as conn:
            conn.execute(bench.REFERENCE_TABLE)
        from accounts.services import team_create
        from webhooks.services import endpoint_create, processing

        team = team_create(name="Profile")
        endpoint = endpoint_create(
            team=team, secret=bench.SECRET, triggers={"customer.created": bench.TRIGGER}, mode="live"
        )
        path = endpoint.get_receive_path()
        os.environ["BENCH_SIGNING_SECRET"] = bench.SECRET
        import reference_app

        from loopsync.wsgi import application

        template = json.loads(bench.FIXTURE.read_text())
        for item in bench.events(template, "prw", 100):  # warm-up: imports, the endpoint cached, the statement
            call(application, path, item)
            call(reference_app.application, path, item)
        processing.deliveries_drain(budget_seconds=3600)

        def receiving(tag: str):
            batch = bench.events(template, tag, args.events)
            return lambda: [call(application, path, item) for item in batch]

        def referencing(tag: str):
            batch = bench.events(template, tag, args.events)
            return lambda: [call(reference_app.application, path, item) for item in batch]

        def draining() -> None:
            processing.deliveries_drain(budget_seconds=3600)

        n = args.events
        receive_cpu = timed(receiving("pra"))
        drain_cpu = timed(draining)
        reference_cpu = timed(referencing("rfa"))
        print(f"CPU of this process, {n} webhooks of {len(bench.events(template, 'x00', 1)[0].body)} B:")
        print(f"  receive   (loopsync.wsgi.application)  {receive_cpu / n * 1000:.3f} ms/request")
        print(f"  reference (bench/reference_app.py)     {reference_cpu / n * 1000:.3f} ms/request")
        print(f"  drain     (deliveries_drain)           {drain_cpu / n * 1000:.3f} ms/event")
        print("\nreceive, flat profile (own time):")
        print(flat_profile(receiving("prb"), args.top))
        print("\nreference, flat profile (own time):")
        print(flat_profile(referencing("rfb"), args.top))
        print("\ndrain, flat profile (own time):")
        print(flat_profile(draining, args.top))
        if args.emails:
            emails(team, args.emails, smtp_port, args.top)
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(f"{bench.PG}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        bench.broker().flushdb()
    return 0


def emails(team, n: int, smtp_port: int, top: int) -> None:
    """CPU per email of advancing a one-email loop's runs (`runs_drain`: render, queue) and of sending what they
    queued (`emails_drain`: claim, build the message, SMTP, mark sent), against a bare smtplib client sending
    as many messages of the same size over one connection to the same sink (bench/smtp_sink.py, its own
    process). The loop and its step are bench/emails.py's."""
    from contacts.models import Contact
    from loops.models import EmailMessage, Loop, LoopStep
    from loops.services import emails_drain, event_fire, loop_activate, runs_drain

    loop = Loop.objects.create(team=team, name="Profile loop", trigger_event_name="benchEvent")
    LoopStep.objects.create(
        team=team,
        loop=loop,
        kind="email",
        subject="Thanks {{ contact.first_name | default: 'there' }}: {{ event.amount_formatted }}",
        preview_text="Your receipt",
        body="Hi {{ contact.first_name }},\n\nWe got **{{ event.amount_formatted }}**.\n\n"
        "[View invoice]({{ event.hosted_invoice_url }}){.button}",
    )
    loop_activate(loop=loop)

    def fired(tag: str) -> None:
        contacts = Contact.objects.bulk_create(
            Contact(team=team, email=f"{tag}+{i}@example.com", first_name=f"Name{i}", livemode=True) for i in range(n)
        )
        for i, contact in enumerate(contacts):
            event_fire(
                team=team,
                contact=contact,
                name="benchEvent",
                idempotency_key=f"evt_{tag}_{i}",
                properties={"amount_formatted": "$19.00", "hosted_invoice_url": "https://invoice.stripe.com/i/1"},
            )

    def advancing() -> None:
        while runs_drain(budget_seconds=3600):
            pass

    def sending() -> None:
        while emails_drain(budget_seconds=3600):
            pass

    handle, countfile = tempfile.mkstemp(prefix="loopsync-sink-")
    os.close(handle)
    sink = subprocess.Popen([sys.executable, str(BENCH_DIR / "smtp_sink.py"), str(smtp_port), countfile])
    try:
        time.sleep(1)  # the sink's start-up
        fired("pea")
        advance_cpu = timed(advancing)
        size = len(EmailMessage.objects.filter(status="queued").first().html_body) + 600  # with its headers
        send_cpu = timed(sending)
        sent = EmailMessage.objects.filter(status="sent").count()
        if sent != n:
            raise SystemExit(f"{sent} of {n} emails were sent")

        def bare() -> None:
            from email.message import EmailMessage as Message

            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
                for i in range(n):
                    message = Message()
                    message["From"], message["To"], message["Subject"] = "b@example.com", f"b+{i}@example.com", "Bare"
                    message.set_content("x" * size)
                    client.send_message(message)

        bare_cpu = timed(bare)
        print(f"\nCPU of this process, {n} emails (one-email loop, bench/emails.py's step):")
        print(f"  advance the runs (runs_drain: render, queue)            {advance_cpu / n * 1000:.3f} ms/email")
        print(f"  send them (emails_drain: claim, build, SMTP, mark sent) {send_cpu / n * 1000:.3f} ms/email")
        print(f"  a bare smtplib client, {size} B each, one connection      {bare_cpu / n * 1000:.3f} ms/email")
        fired("peb")
        print("\nadvance the runs, flat profile (own time):")
        print(flat_profile(advancing, top))
        print("\nsend the emails, flat profile (own time):")
        print(flat_profile(sending, top))
    finally:
        sink.terminate()
        sink.wait(timeout=10)
        os.unlink(countfile)


if __name__ == "__main__":
    sys.exit(main())
