"""LoopSync Audience benchmark: the Audience list and its search over 1,000,000 contacts in PostgreSQL.

Loads one team with `--contacts` contacts (and a second, smaller team, so the tenancy filter is real) into its
own database, then times real requests to /audience/ through Django, in this process, as the team's owner:
server time (middleware, session, view, queries, template), no network. Prints p50/p95/max per scenario and
whether p95 ≤ 50 ms.

Run from the project root: `make bench` (after the other two) or `.venv/bin/python bench/audience.py --help`.
Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth); it creates and drops `loopsync_bench_audience`
(kept, and reused when it already holds the rows, with --keep). Exit 0 when it ran (targets met or MISSED),
1 when something broke.
"""

import argparse
import math
import os
import random
import re
import string
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
PG = "postgres://postgres@127.0.0.1:5432"
DB_NAME = "loopsync_bench_audience"
DB_URL = f"{PG}/{DB_NAME}"
TEAM = "Audience bench"
OTHER_TEAM = "Audience bench (other team)"
OWNER = "audience-bench-owner"
TARGET_P95_MS = 50.0

ENV = {
    "DATABASE_URL": DB_URL,
    "DEBUG": "false",
    "SECRET_KEY": "bench-secret-key",
    "SITE_URL": "http://127.0.0.1:8000",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/13",  # required outside DEBUG; never contacted by these reads
    "CONN_MAX_AGE": "600",
    "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
    # Production settings over plain HTTP on this machine: no redirect to HTTPS.
    "SECURE_SSL_REDIRECT": "false",
    "SECURE_COOKIES": "false",
    "LOG_LEVEL": "WARNING",
    "DJANGO_SETTINGS_MODULE": "loopsync.settings",
}


def words(text: str) -> list[str]:
    return text.split()


# Names in rough order of frequency: the loader picks index floor(random()^1.5 × n), so the first name is on
# ≈4.6% of the contacts and the last on ≈0.3%.
FIRST_NAMES = words(
    """james mary john patricia robert jennifer michael linda william elizabeth david barbara richard
susan joseph jessica thomas sarah charles karen christopher lisa daniel nancy matthew betty anthony margaret mark
sandra donald ashley steven kimberly paul emily andrew donna joshua michelle kenneth carol kevin amanda brian
dorothy george melissa timothy deborah ronald stephanie edward rebecca jason sharon jeffrey laura ryan cynthia
jacob kathleen gary amy nicholas angela eric shirley jonathan anna stephen brenda larry pamela justin emma scott
nicole brandon helen benjamin samantha samuel katherine gregory christine alexander debra frank rachel patrick
carolyn raymond janet jack catherine dennis maria jerry heather tyler diane aaron ruth jose julie adam olivia
nathan joyce henry virginia zachary victoria douglas kelly peter lauren kyle christina noah joan ethan evelyn
jeremy judith walter megan christian andrea keith cheryl roger hannah terry jacqueline austin martha sean gloria
gerald teresa carl ann harold sara dylan madison arthur frances lawrence kathryn jordan janice jesse jean bryan
abigail billy alice bruce judy gabriel sophia joe grace logan denise albert amber willie doris alan marilyn juan
danielle wayne beverly elijah isabella randy theresa roy diana vincent natalie ralph brittany eugene charlotte
russell marie bobby kayla mason alexis philip lori louis ada"""
)
LAST_NAMES = words(
    """smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez gonzalez
wilson anderson thomas taylor moore jackson martin lee perez thompson white harris sanchez clark ramirez lewis
robinson walker young allen king wright scott torres nguyen hill flores green adams nelson baker hall rivera
campbell mitchell carter roberts gomez phillips evans turner diaz parker cruz edwards collins reyes stewart morris
morales murphy cook rogers gutierrez ortiz morgan cooper peterson bailey reed kelly howard ramos kim cox ward
richardson watson brooks chavez wood james bennett gray mendoza ruiz hughes price alvarez castillo sanders patel
myers long ross foster jimenez powell jenkins perry russell sullivan bell coleman butler henderson barnes gonzales
fisher vasquez simmons romero jordan patterson alexander hamilton graham reynolds griffin wallace moreno west cole
hayes bryant herrera gibson ellis tran medina aguilar stevens murray ford castro marshall owens harrison fernandez
mcdonald woods washington kennedy wells vargas henry chen freeman webb tucker guzman burns crawford olson simpson
porter hunter gordon mendez silva shaw snyder mason dixon munoz hunt hicks holmes palmer wagner black robertson
boyd rose stone salazar fox warren mills meyer rice schmidt garza daniels ferguson nichols stephens soto weaver
ryan gardner payne grant dunn lovelace hopper"""
)
DOMAINS = words(
    """gmail.com gmail.com gmail.com gmail.com yahoo.com yahoo.com hotmail.com outlook.com outlook.com
icloud.com aol.com proton.me fastmail.com example.com acme.io globex.com initech.com umbrella.co hooli.xyz
piedpiper.net stark.dev wayne.co.uk"""
)

# One INSERT … SELECT generate_series per team. Emails are unique within a team: the number in each one is the
# row's own `g`, and the digits before the @ give `g` back. ≈15% have no name (API and imports often have none),
# ≈10% are unsubscribed, created_at is spread over two years. Rows are inserted in created_at order, as the app
# writes them (created_at is the time of the INSERT), so the table's physical order follows created_at and id.
LOAD_SQL = """
INSERT INTO contacts_contact (team_id, email, first_name, last_name, source, subscribed, user_group, user_id,
    stripe_customer_id, stripe_event_created, properties, created_at, updated_at, livemode, unsubscribed_by)
SELECT %(team)s,
       CASE g %% 5
           WHEN 0 THEN f || '.' || l
           WHEN 1 THEN left(f, 1) || l
           WHEN 2 THEN f || '_'
           WHEN 3 THEN l || '.' || f
           ELSE f || l
       END || g || '@' || d,
       CASE WHEN named THEN initcap(f) ELSE '' END,
       CASE WHEN named THEN initcap(l) ELSE '' END,
       src,
       NOT unsub,
       CASE WHEN g %% 7 = 0 THEN 'pro' WHEN g %% 11 = 0 THEN 'team' ELSE '' END,
       CASE WHEN src = 'api' THEN 'usr_' || g ELSE '' END,
       CASE WHEN src = 'stripe' THEN 'cus_' || md5(g::text) ELSE '' END,
       CASE WHEN src = 'stripe' THEN created ELSE NULL END,
       CASE WHEN src = 'stripe' THEN jsonb_build_object('plan', CASE WHEN g %% 3 = 0 THEN 'pro' ELSE 'basic' END)
            ELSE '{}'::jsonb END,
       created,
       created,
       true,
       CASE WHEN unsub THEN 'team' ELSE '' END
FROM (
    SELECT g,
           (%(first)s::text[])[1 + floor(power(random(), 1.5) * %(nfirst)s)::int] AS f,
           (%(last)s::text[])[1 + floor(power(random(), 1.5) * %(nlast)s)::int] AS l,
           (%(domains)s::text[])[1 + floor(random() * %(ndomains)s)::int] AS d,
           random() >= 0.15 AS named,
           random() < 0.10 AS unsub,
           CASE WHEN r < 0.55 THEN 'stripe' WHEN r < 0.75 THEN 'import' WHEN r < 0.90 THEN 'api'
                WHEN r < 0.998 THEN 'form' ELSE 'Added in the app' END AS src,
           now() - random() * interval '730 days' AS created
    FROM (SELECT g, random() AS r FROM generate_series(1, %(n)s) AS g) AS numbered
) AS picked
ORDER BY created
"""


class BenchError(Exception):
    """Something broke: the benchmark cannot give a figure."""


def say(text: str = "") -> None:
    print(text, flush=True)


def machine_busy() -> float:
    """CPU seconds the whole machine has spent, all cores (all but idle and iowait), from /proc/stat."""
    with open("/proc/stat") as fh:
        jiffies = [int(v) for v in fh.readline().split()[1:]]
    return (sum(jiffies[:8]) - jiffies[3] - jiffies[4]) / os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of one process, e.g. our PostgreSQL backend (proc(5): fields 14 and 15)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            raw = fh.read()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile of seconds, in milliseconds."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000 if ordered else float("nan")


# --- database ------------------------------------------------------------------------------------


def admin() -> psycopg.Connection:
    return psycopg.connect(f"{PG}/postgres", autocommit=True, connect_timeout=5)


def bench_db() -> psycopg.Connection:
    return psycopg.connect(DB_URL, autocommit=True, connect_timeout=5)


def db_exists() -> bool:
    with admin() as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone() is not None


def db_create() -> None:
    with admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))


def db_drop() -> None:
    with admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME)))


def loaded_counts() -> tuple[int, int] | None:
    """(contacts of the bench team, of the other team) when the database holds them, else None."""
    if not db_exists():
        return None
    try:
        with bench_db() as conn:
            rows = dict(
                conn.execute(
                    "SELECT t.name, count(c.id) FROM accounts_team t LEFT JOIN contacts_contact c ON c.team_id = t.id "
                    "WHERE t.name IN (%s, %s) GROUP BY t.name",
                    (TEAM, OTHER_TEAM),
                ).fetchall()
            )
    except psycopg.Error:
        return None
    if TEAM not in rows or OTHER_TEAM not in rows:
        return None
    return rows[TEAM], rows[OTHER_TEAM]


def load(team_id: int, other_id: int, contacts: int, other: int) -> float:
    """Bulk-load both teams. The table's secondary indexes are dropped for the load and rebuilt from their own
    definitions afterwards (as pg_restore does): building an index once is far faster than a million inserts
    into it. Returns the seconds taken, ANALYZE included."""
    started = time.perf_counter()
    with bench_db() as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        indexes = conn.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = 'contacts_contact'::regclass "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) ORDER BY i.relname"
        ).fetchall()
        # Statistics targets set on index expressions (migration 0004) go with the index: note them to restore.
        targets = conn.execute(
            "SELECT i.relname, a.attnum, a.attstattarget FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "JOIN pg_attribute a ON a.attrelid = i.oid "
            "WHERE x.indrelid = 'contacts_contact'::regclass AND a.attstattarget > 0"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        params = {
            "first": FIRST_NAMES,
            "nfirst": len(FIRST_NAMES),
            "last": LAST_NAMES,
            "nlast": len(LAST_NAMES),
            "domains": DOMAINS,
            "ndomains": len(DOMAINS),
        }
        conn.execute("SELECT setseed(0.42)")
        for team, count in ((team_id, contacts), (other_id, other)):
            t0 = time.perf_counter()
            conn.execute(LOAD_SQL, {**params, "team": team, "n": count})
            say(f"  inserted {count:,} contacts for team {team} in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        for _, definition in indexes:
            conn.execute(definition)
        for name, column, target in targets:
            conn.execute(
                sql.SQL("ALTER INDEX {} ALTER COLUMN {} SET STATISTICS {}").format(
                    sql.Identifier(name), sql.Literal(column), sql.Literal(target)
                )
            )
        say(f"  rebuilt {len(indexes)} indexes in {time.perf_counter() - t0:.1f} s: {', '.join(n for n, _ in indexes)}")
        t0 = time.perf_counter()
        conn.execute("VACUUM (ANALYZE) contacts_contact")
        say(f"  VACUUM ANALYZE in {time.perf_counter() - t0:.1f} s")
    return time.perf_counter() - started


def sizes() -> str:
    with bench_db() as conn:
        table, total = conn.execute(
            "SELECT pg_size_pretty(pg_relation_size('contacts_contact')), "
            "pg_size_pretty(pg_total_relation_size('contacts_contact'))"
        ).fetchone()
        indexes = conn.execute(
            "SELECT i.relname, pg_size_pretty(pg_relation_size(i.oid)) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = 'contacts_contact'::regclass "
            "ORDER BY pg_relation_size(i.oid) DESC"
        ).fetchall()
    listed = ", ".join(f"{name} {size}" for name, size in indexes)
    return f"table {table}, with indexes {total} ({listed})"


# --- scenarios -----------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    requests: list[dict]  # query parameters, one dict per measured request (warm-up reuses the first ones)
    headers: dict = field(default_factory=dict)


@dataclass
class Result:
    name: str
    times: list[float]
    sql_times: list[float]
    queries: int
    rows: list[int]
    others: float  # share of the machine's CPU that other processes used meanwhile

    def line(self) -> str:
        p50, p95 = pct(self.times, 50), pct(self.times, 95)
        return (
            f"  {self.name:<40}{len(self.times):>6}{sum(self.rows) / len(self.rows):>7.1f}{self.queries:>5}"
            f"{p50:>8.1f}{p95:>8.1f}{max(self.times) * 1000:>8.1f}{pct(self.sql_times, 50):>9.1f}"
            f"{pct(self.sql_times, 95):>9.1f}{self.others * 100:>8.0f}%   {'met' if p95 <= TARGET_P95_MS else 'MISSED'}"
        )


HEADER = (
    f"  {'scenario':<40}{'reqs':>6}{'rows':>7}{'SQL':>5}{'p50':>8}{'p95':>8}{'max':>8}{'SQL p50':>9}{'SQL p95':>9}"
    f"{'others':>9}   p95 ≤ {TARGET_P95_MS:.0f} ms"
)

ROW_RE = re.compile(r'<a href="/audience/\d+/">')
AFTER_RE = re.compile(r'href="\?[^"]*?after=([A-Za-z0-9_\-]+)')


def scenarios(team, n: int, rng: random.Random, client, url: str) -> list[Scenario]:
    from contacts.models import Contact
    from loopsync.keyset import cursor_encode

    ids = Contact.objects.filter(team=team).order_by("id").values_list("id", flat=True)
    low, high = ids.first(), ids.last()

    def some_contacts(count: int) -> list:
        picked = rng.sample(range(low, high + 1), min(count * 2, high - low + 1))
        found = list(Contact.objects.filter(team=team, id__in=picked).only("email", "created_at"))
        rng.shuffle(found)
        return found[:count]

    def cased(term: str) -> str:
        return rng.choice([term, term.capitalize(), term.upper()])

    # A rare fragment: 8 characters of a real contact's email before the @ (letters and its number).
    rare = [c.email.split("@")[0][-9:-1] for c in some_contacts(n)]
    # Common first names: the 20 most frequent (≈4.6% down to ≈1% of the contacts each), in varied case.
    common = [cased(rng.choice(FIRST_NAMES[:20])) for _ in range(n)]
    # Terms that match nothing: nonsense, or a common name with a nonsense tail.
    nothing = [
        "".join(rng.choices("qxzjvkw", k=7)) if i % 2 else rng.choice(FIRST_NAMES[:40]) + rng.choice("qxz") + "kw"
        for i in range(n)
    ]

    # Deep pages: follow "Show more" 20 pages in, then measure pages 20 to 40 (as their full pages).
    cursors, params = [], {}
    for page in range(40):
        body = client.get(url, params).content.decode()
        found = AFTER_RE.search(body)
        if not found:
            raise BenchError(f"No 'Show more' link on page {page + 1}")
        params = {"after": found.group(1)}
        if page >= 19:
            cursors.append(found.group(1))
    # Half-way and beyond: a cursor at a random contact is a random position in the list.
    far = [cursor_encode(c.created_at, c.pk) for c in some_contacts(n)]

    return [
        Scenario("first page", [{} for _ in range(n)]),
        Scenario("deep page (pages 20-40 via Show more)", [{"after": rng.choice(cursors)} for _ in range(n)]),
        Scenario("page at a random position (cursor)", [{"after": c} for c in far]),
        Scenario("search: rare email fragment", [{"q": q} for q in rare]),
        Scenario("search: common first name", [{"q": q} for q in common]),
        Scenario("search: no match", [{"q": q} for q in nothing]),
        Scenario("search: 2 characters", [{"q": "".join(rng.choices(string.ascii_lowercase, k=2))} for _ in range(n)]),
        Scenario("filter: source=stripe", [{"source": "stripe"} for _ in range(n)]),
        Scenario("filter: subscribed=no", [{"subscribed": "no"} for _ in range(n)]),
        Scenario("filter: rare source (0.2%)", [{"source": "Added in the app"} for _ in range(n)]),
        Scenario(
            "search + filters (name, stripe, unsub.)",
            [{"q": q, "source": "stripe", "subscribed": "no"} for q in common],
        ),
        Scenario("oldest first", [{"sort": "oldest"} for _ in range(n)]),
    ]


def measure(client, url: str, scenario: Scenario, warmup: int) -> Result:
    from django.db import connection

    sql_time = [0.0]
    queries = [0]

    def timed(execute, query, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(query, params, many, context)
        finally:
            sql_time[0] += time.perf_counter() - t0
            queries[0] += 1

    def get(params: dict):
        return client.get(f"{url}?{urlencode(params)}" if params else url, **scenario.headers)

    for params in scenario.requests[:warmup]:
        get(params)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    times, sql_times, rows, statuses, counts = [], [], [], set(), set()
    busy0, self0, backend0, wall0 = machine_busy(), time.process_time(), process_cpu(backend), time.perf_counter()
    with connection.execute_wrapper(timed):
        for params in scenario.requests:
            sql_time[0], queries[0] = 0.0, 0
            t0 = time.perf_counter()
            response = get(params)
            times.append(time.perf_counter() - t0)
            sql_times.append(sql_time[0])
            counts.add(queries[0])
            statuses.add(response.status_code)
            rows.append(len(ROW_RE.findall(response.content.decode())))
    wall = time.perf_counter() - wall0
    ours = (time.process_time() - self0) + (process_cpu(backend) - backend0)
    others = max(0.0, machine_busy() - busy0 - ours) / ((os.cpu_count() or 1) * wall)
    if statuses != {200}:
        raise BenchError(f"{scenario.name}: answered {sorted(statuses)}, not only 200")
    return Result(scenario.name, times, sql_times, max(counts), rows, others)


# --- the run -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=1_000_000, help="contacts of the measured team (1,000,000)")
    parser.add_argument("--other", type=int, default=None, help="contacts of the second team (default contacts/10)")
    parser.add_argument("--requests", type=int, default=200, help="measured requests per scenario (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured warm-up requests per scenario (20)")
    parser.add_argument(
        "--keep",
        action="store_true",
        help=f"keep the {DB_NAME} database afterwards, and reuse it when it already holds the same contacts",
    )
    args = parser.parse_args()
    other = args.other if args.other is not None else max(args.contacts // 10, 1)
    if args.contacts < 2500 or other < 1 or args.requests < 1 or args.warmup < 0:
        parser.error("--contacts must be at least 2500 (40 pages), --other and --requests positive")

    os.environ.update(ENV)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import override_settings

    from accounts.models import Membership, Team
    from accounts.services import membership_add, team_create

    ok = True
    static_root = tempfile.TemporaryDirectory(prefix="loopsync-bench-static-")
    try:
        say(
            f"LoopSync Audience benchmark — {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} CPUs; "
            f"{args.contacts:,} contacts (+{other:,} in a second team), database {DB_NAME}"
        )
        reuse = args.keep and loaded_counts() == (args.contacts, other)
        if not reuse:
            db_create()
        call_command("migrate", "--noinput", verbosity=0)
        connection.close()
        if reuse:
            say("  reusing the loaded database (--keep, same counts); migrations applied")
            team = Team.objects.get(name=TEAM)
            user = get_user_model().objects.get(username=OWNER)
        else:
            team = team_create(name=TEAM)
            other_team = team_create(name=OTHER_TEAM)
            user = get_user_model().objects.create_user(OWNER, "owner@audience.bench", None)
            membership_add(team=team, user=user, role=Membership.Role.OWNER)
            outsider = get_user_model().objects.create_user(OWNER + "-other", "owner@other.bench", None)
            membership_add(team=other_team, user=outsider, role=Membership.Role.OWNER)
            say(f"Loading {args.contacts + other:,} contacts …")
            seconds = load(team.id, other_team.id, args.contacts, other)
            say(f"  loaded in {seconds:.1f} s (insert, index builds, VACUUM ANALYZE)")
        say(f"  {sizes()}")

        # Production static files (DEBUG=false): the manifest storage, collected into a temporary directory.
        with override_settings(STATIC_ROOT=static_root.name):
            call_command("collectstatic", "--noinput", verbosity=0)
            client = Client()
            client.force_login(user)
            url = "/audience/"
            first = client.get(url)
            if first.status_code != 200 or not ROW_RE.search(first.content.decode()):
                raise BenchError(f"GET {url} answered {first.status_code} without contacts")
            rng = random.Random(42)
            plan = scenarios(team, args.requests, rng, client, url)
            say()
            say(
                f"Server time per request (django.test.Client in this process, DEBUG=false, logged in as the owner; "
                f"{args.warmup} warm-up + {args.requests} measured each). Milliseconds. rows: contacts on the page; "
                f"SQL: queries per request; SQL p50/p95: time in the database driver; others: the machine's CPU "
                f"that other processes used meanwhile (above ~10%, the figures are disturbed)."
            )
            say(HEADER)
            results = []
            for scenario in plan:
                result = measure(client, url, scenario, args.warmup)
                results.append(result)
                say(result.line())
        missed = [r.name for r in results if pct(r.times, 95) > TARGET_P95_MS]
        say()
        say(
            f"Summary ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, PostgreSQL, {args.contacts:,} contacts): "
            + ("every scenario's p95 ≤ 50 ms: met" if not missed else f"p95 > 50 ms: MISSED in {', '.join(missed)}")
        )
    except BenchError as exc:
        say(f"\nBENCHMARK BROKE: {exc}")
        ok = False
    except KeyboardInterrupt:
        say("\nInterrupted.")
        ok = False
    finally:
        static_root.cleanup()
        connection.close()
        if args.keep:
            say(f"Kept database {DB_NAME} (--keep).")
        else:
            try:
                db_drop()
            except psycopg.Error as exc:
                say(f"Cleanup failed: {exc}")
                ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
