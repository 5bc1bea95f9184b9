"""LoopSync CSV benchmark: import 100,000 contacts from a CSV file, export them, and import the export into a second
team, whose export must be the same file (every field and property round-trips).

Each time is set beside a reference measured in the same run on the same rows:
- the import, beside a minimal importer: csv.reader and bulk_create in batches of 1,000, with no matching, no
  validation, no typing and no progress (what the import does on top of it is the ratio);
- the export, beside PostgreSQL's own `COPY (SELECT …) TO STDOUT WITH CSV` of the same columns.

The import runs as the Celery task does (`import_run`, in batches, each with its progress), here in this process.
Run from the project root: `make bench` or `.venv/bin/python bench/contacts_csv.py [--rows N]`. Needs PostgreSQL on
127.0.0.1:5432; it creates and drops `loopsync_bench_csv`. Exit 0 when it ran and the round trip held, 1 if not.
"""

import argparse
import csv
import io
import os
import random
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PG = "postgres://postgres@127.0.0.1:5432"
DB_NAME = "loopsync_bench_csv"
ENV = {
    "DATABASE_URL": f"{PG}/{DB_NAME}",
    "DEBUG": "false",
    "SECRET_KEY": "bench-secret-key",
    "SITE_URL": "http://127.0.0.1:8000",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/13",  # never contacted: the import runs in this process
    "ALLOWED_HOSTS": "127.0.0.1",
    "LOG_LEVEL": "WARNING",
    "DJANGO_SETTINGS_MODULE": "loopsync.settings",
}
HEADER = ["Email", "First Name", "Last Name", "Source", "Subscribed", "User Group", "User Id", "plan", "seats", "vip",
          "renews"]  # fmt: skip


def say(text: str) -> None:
    print(text, flush=True)


def rows(n: int) -> list[list[str]]:
    rng = random.Random(42)
    plans = ["Basic", "Pro", "Team", '=HYPERLINK("x")', "-Legacy", ""]
    out = []
    for i in range(n):
        out.append(
            [
                f"person{i}@example{i % 97}.com",
                rng.choice(["Ada", "Alan", "Grace", "Barbara", "Edsger", ""]),
                rng.choice(["Lovelace", "Turing", "Hopper", "Liskov", ""]),
                rng.choice(["waitlist", "api", "ads", ""]),
                rng.choice(["true", "true", "true", "false"]),
                rng.choice(["founders", "beta", ""]),
                f"user-{i}" if i % 3 else "",
                rng.choice(plans),
                str(rng.randint(-5, 500)) if i % 5 else f"{rng.random() * 100:.3f}",
                rng.choice(["true", "false", ""]),
                f"2027-{1 + i % 12:02d}-{1 + i % 28:02d}" if i % 4 else "",
            ]
        )
    return out


def to_csv(data: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    writer.writerows(data)
    return buffer.getvalue().encode()


def db_create() -> None:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def db_drop() -> None:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the file (100,000)")
    parser.add_argument("--keep", action="store_true", help=f"keep the {DB_NAME} database afterwards")
    args = parser.parse_args()
    os.environ.update(ENV)
    sys.path.insert(0, str(ROOT))
    db_create()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from accounts.services import team_create
    from contacts.models import Contact
    from contacts.services import contacts_rows, csv_lines, import_create, import_run, import_start

    def export(team) -> tuple[bytes, float]:
        started = time.perf_counter()
        contacts = Contact.objects.filter(team=team, livemode=True)
        text = "".join(csv_lines(contacts_rows(team=team, contacts=contacts))).encode()
        return text, time.perf_counter() - started

    def import_(team, raw: bytes) -> tuple[object, float]:
        started = time.perf_counter()
        contact_import = import_create(team=team, user=None, filename="bench.csv", raw=raw)
        import_start(
            contact_import=contact_import, mapping=contact_import.mapping, trigger_loops=False, in_celery=False
        )
        status = import_run(import_id=contact_import.pk)
        contact_import.refresh_from_db()
        assert status == "done", status
        return contact_import, time.perf_counter() - started

    try:
        say(f"LoopSync CSV benchmark — {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} CPUs; {args.rows:,} rows")
        call_command("migrate", "--noinput", verbosity=0)
        data = rows(args.rows)
        raw = to_csv(data)
        say(f"  the file: {len(raw) / 1e6:.1f} MB, {len(HEADER)} columns")
        reference_team, first, second = (team_create(name=f"CSV bench {n}") for n in ("reference", "A", "B"))

        started = time.perf_counter()
        reader = csv.reader(io.StringIO(raw.decode()))
        next(reader)
        batch = []
        for row in reader:
            batch.append(Contact(team=reference_team, email=row[0], first_name=row[1], last_name=row[2]))
            if len(batch) == 1000:
                Contact.objects.bulk_create(batch)
                batch = []
        Contact.objects.bulk_create(batch)
        reference_import = time.perf_counter() - started

        done, import_seconds = import_(first, raw)
        say(
            f"Import:  {import_seconds:6.2f} s ({args.rows / import_seconds:,.0f} rows/s): {done.created:,} new, "
            f"{done.failed:,} refused; the minimal importer {reference_import:.2f} s: "
            f"{import_seconds / reference_import:.1f}x its time"
        )
        exported, export_seconds = export(first)
        started = time.perf_counter()
        with connection.cursor() as cursor:
            copy = io.BytesIO()
            with cursor.connection.cursor().copy(
                "COPY (SELECT email, first_name, last_name, source, subscribed, user_group, user_id, properties "
                "FROM contacts_contact WHERE team_id = %s ORDER BY id) TO STDOUT WITH CSV HEADER",
                [first.pk],
            ) as stream:
                for chunk in stream:
                    copy.write(chunk)
        reference_export = time.perf_counter() - started
        say(
            f"Export:  {export_seconds:6.2f} s ({args.rows / export_seconds:,.0f} rows/s, "
            f"{len(exported) / 1e6:.1f} MB); "
            f"PostgreSQL's COPY {reference_export:.2f} s: {export_seconds / reference_export:.1f}x its time"
        )
        again, again_seconds = import_(second, exported)
        exported_again, _ = export(second)
        same = exported_again == exported
        say(
            f"Round trip: the export imported into a second team ({again_seconds:.2f} s, {again.created:,} new) "
            f"exports {'the same file, byte for byte' if same else 'A DIFFERENT FILE'}."
        )
        return 0 if same and done.created == args.rows else 1
    finally:
        connection_close()
        if not args.keep:
            db_drop()


def connection_close() -> None:
    try:
        from django.db import connections

        connections.close_all()
    except Exception:  # noqa: BLE001 - closing what may not be open
        pass


if __name__ == "__main__":
    sys.exit(main())
