"""Where the CPU of one webhook goes: the receive path, the bare reference and the drain, in this process.

No server, no network: each webhook is a WSGI call on `loopsync.wsgi.application` (the production entry, fast
path included) and on `bench/reference_app.application`; the drain is `deliveries_drain()` over what was
received. Prints CPU ms per request (or event) of this process only, then pyinstrument's flat profile of each
(functions by their own time). PostgreSQL's share is not in these figures: bench/run.py measures it.

    .venv/bin/python bench/profile.py                 # 2000 webhooks
    .venv/bin/python bench/profile.py --events 5000 --top 30

Uses its own database, loopsync_bench_profile (dropped afterwards), and bench/run.py's Redis db 15 for the
wake-ups (emptied afterwards): run it when the webhook benchmark is not running.
"""

import argparse
import io
import json
import os
import sys
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
    args = parser.parse_args()

    os.environ.update({**bench.ENV, "DATABASE_URL": DB_URL, "DJANGO_SETTINGS_MODULE": "loopsync.settings"})
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
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(f"{bench.PG}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        bench.broker().flushdb()
    return 0


if __name__ == "__main__":
    sys.exit(main())
