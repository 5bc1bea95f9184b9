"""LoopSync webhook benchmark: ingest against a bare reference receiver, the Celery drain, then end to end.

See bench/README.md. Run from the project root: `make bench` or `.venv/bin/python bench/run.py --help`.
Everything it starts listens on 127.0.0.1 only and is stopped at the end; it stops by itself in bounded
time. Exit status: 0 when it ran (targets met or MISSED), 1 when something broke.
"""

import argparse
import asyncio
import contextlib
import copy
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psycopg
import redis
from psycopg import sql
from stripe import WebhookSignature

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
BIN = Path(sys.executable).parent
FIXTURE = ROOT / "tests" / "fixtures" / "stripe" / "dj-stripe" / "customer.created.with_name.json"

HOST = "127.0.0.1"
APP_PORT = 8101
REF_PORT = 8102
PG = "postgres://postgres@127.0.0.1:5432"
DB_NAME = "loopsync_bench"
DB_URL = f"{PG}/{DB_NAME}"
REDIS_DB = 15
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
QUEUE = "loopsync-bench"
SECRET = "whsec_bench_secret_000000"
TRIGGER = "newStripeCustomer"
GUNICORN_WORKERS = 3

# Targets (issue 12), ratios against the reference measured in the same run.
TARGET_RATIO = 1.0  # ingest req/s, loopsync / reference
TARGET_P99_OVER_REFERENCE_MS = 10.0  # loopsync p99 ≤ the reference's p99 + this
TARGET_DRAIN_PER_S = 1000.0  # one worker, default concurrency
TARGET_E2E_RATIO = 0.5  # end to end events/s / the reference's ingest req/s
RSS_GROWTH_LIMIT_MB = 10.0  # per process, from the end of the end-to-end warm-up to the end of the run

ENV = {
    "DATABASE_URL": DB_URL,
    "DEBUG": "false",
    "SECRET_KEY": "bench-secret-key",
    "SITE_URL": "http://127.0.0.1:8101",
    "CELERY_BROKER_URL": REDIS_URL,
    "CELERY_TASK_DEFAULT_QUEUE": QUEUE,
    "CONN_MAX_AGE": "600",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    # Production settings over plain HTTP on this machine: no redirect to HTTPS.
    "SECURE_SSL_REDIRECT": "false",
    "SECURE_COOKIES": "false",
    "LOG_LEVEL": "WARNING",
    "BENCH_SIGNING_SECRET": SECRET,
    "PYTHONUNBUFFERED": "1",
}

REFERENCE_TABLE = """
CREATE TABLE bench_reference_delivery (
    id bigserial PRIMARY KEY,
    stripe_event_id text UNIQUE,
    event_type text,
    payload jsonb,
    received_at timestamptz DEFAULT now()
)
"""


class BenchError(Exception):
    """Something broke: the benchmark cannot give a figure."""


def say(text: str = "") -> None:
    print(text, flush=True)


# --- processes -----------------------------------------------------------------------------------


SETTINGS = {"module": "loopsync.settings"}


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(ENV)
    env["DJANGO_SETTINGS_MODULE"] = SETTINGS["module"]
    return env


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def members(self) -> list[int]:
        """Live processes of the session this process leads: the leader, its workers, what they forked."""
        found = []
        for stat in proc_stats():
            if stat.pgid == self.pid and stat.sid == self.pid:
                found.append(stat.pid)
        return found

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM the leader and its group (started in their own session), wait, SIGKILL what is left."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace)
        # Left over: the leader ignored SIGTERM, or exited and left children. Only members of this session.
        for pid in self.members():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)


def start(name: str, argv: list[str], logdir: Path) -> Proc:
    log = logdir / f"{name}.log"
    with open(log, "wb") as out:
        popen = subprocess.Popen(  # noqa: S603
            argv, cwd=ROOT, env=child_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Proc(name=name, popen=popen, log=log)


def manage(*args: str) -> str:
    result = subprocess.run(  # noqa: S603
        [str(BIN / "python"), "manage.py", *args],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    if result.returncode != 0:
        raise BenchError(f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout


def port_busy(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def wait_http(proc: Proc, url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not proc.alive():
            raise BenchError(f"{proc.name} exited ({proc.popen.returncode}) while starting:\n{proc.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (always http://127.0.0.1)
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise BenchError(f"{proc.name} did not answer {url} within {timeout:.0f} s ({last}):\n{proc.tail()}")


@dataclass(frozen=True)
class Cpu:
    """CPU seconds (user + system) by who spent them; `busy` is the whole machine, all cores."""

    target: float = 0.0  # the process group under test (gunicorn master and workers, or the Celery worker)
    postgres: float = 0.0  # every postgres process, with the backends that exited (the postmaster reaped them)
    redis: float = 0.0
    client: float = 0.0  # this process: the load generator, the poller
    busy: float = 0.0

    def __sub__(self, other: "Cpu") -> "Cpu":
        return Cpu(*(getattr(self, f) - getattr(other, f) for f in self.__dataclass_fields__))

    @property
    def rest(self) -> float:
        """What the rest of the machine spent: other users disturb the figures when this is large."""
        return max(0.0, self.busy - self.target - self.postgres - self.redis - self.client)


@dataclass(frozen=True)
class ProcStat:
    pid: int
    name: str
    pgid: int
    sid: int
    cpu_ticks: int  # utime + stime + cutime + cstime: with the children that exited and were reaped
    rss_pages: int = 0


def proc_stats() -> list[ProcStat]:
    """Every process, from /proc/<pid>/stat (proc(5): pgrp is field 5, session 6, utime to cstime 14 to 17)."""
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                raw = fh.read()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()  # fields[0] is field 3
        out.append(
            ProcStat(
                pid=int(entry.name),
                name=raw[raw.index("(") + 1 : raw.rindex(")")],
                pgid=int(fields[2]),
                sid=int(fields[3]),
                cpu_ticks=sum(int(v) for v in fields[11:15]),
                rss_pages=int(fields[21]),  # field 24
            )
        )
    return out


def cpu_snapshot(pgid: int) -> Cpu:
    """`pgid`: the group under test. A postgres backend that exited is in the postmaster's children's times."""
    ticks = os.sysconf("SC_CLK_TCK")
    by = {"target": 0, "postgres": 0, "redis-server": 0}
    for stat in proc_stats():
        if stat.pgid == pgid:
            by["target"] += stat.cpu_ticks
        elif stat.name in by:
            by[stat.name] += stat.cpu_ticks
    with open("/proc/stat") as fh:
        jiffies = [int(v) for v in fh.readline().split()[1:]]
    busy = sum(jiffies[:8]) - jiffies[3] - jiffies[4]  # all but idle and iowait (guest is inside user)
    return Cpu(
        target=by["target"] / ticks,
        postgres=by["postgres"] / ticks,
        redis=by["redis-server"] / ticks,
        client=time.process_time(),
        busy=busy / ticks,
    )


PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 1024 / 1024


@dataclass(frozen=True)
class Member:
    """One process of a group under test: its CPU seconds so far and its resident memory."""

    label: str
    cpu: float
    rss_mb: float


def members(proc: Proc) -> dict[int, Member]:
    """The processes of `proc`'s group by pid: its leader (gunicorn's master, Celery's parent) and the rest."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for stat in proc_stats():
        if stat.pgid == proc.pid:
            role = "master" if stat.pid == proc.pid else "worker"
            if proc.name.startswith("celery"):
                role = "parent" if stat.pid == proc.pid else "pool process"
            found[stat.pid] = Member(f"{role} {stat.pid}", stat.cpu_ticks / ticks, stat.rss_pages * PAGE_MB)
    return found


def members_line(name: str, before: dict[int, Member], after: dict[int, Member], per: int, unit: str) -> str:
    """CPU ms per `unit` and RSS of each process of a group, between two readings."""
    parts = []
    for pid, member in sorted(after.items()):
        spent = member.cpu - (before[pid].cpu if pid in before else 0.0)
        parts.append(f"{member.label} {spent / max(per, 1) * 1000:.2f} ms/{unit}, RSS {member.rss_mb:.0f} MB")
    return f"  {name} per process: " + "; ".join(parts)


def cpu_line(cpu: Cpu, wall: float, target: str) -> str:
    cores = os.cpu_count() or 1
    line = (
        f"CPU-s: {target} {cpu.target:.1f}, postgres {cpu.postgres:.1f}, redis {cpu.redis:.1f}, "
        f"bench client {cpu.client:.1f}, rest of machine {cpu.rest:.1f}; machine busy {cpu.busy:.1f} of "
        f"{cores * wall:.1f} ({cpu.busy / (cores * wall) * 100 if wall else 0:.0f}%)"
    )
    if cpu.rest > 0.1 * cpu.busy and cpu.rest > 0.5:
        line += "\n    WARNING: other processes used the CPU during this run; its figures are disturbed"
    return line


# --- database and broker -------------------------------------------------------------------------


def db_create() -> None:
    with psycopg.connect(f"{PG}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))


def db_drop() -> None:
    with psycopg.connect(f"{PG}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME)))


def db() -> psycopg.Connection:
    return psycopg.connect(DB_URL, autocommit=True, connect_timeout=5)


def scalar(query: str, params: tuple = ()) -> object:
    with db() as conn:
        return conn.execute(query, params).fetchone()[0]


def pg_sessions() -> int:
    """Sessions ever opened on the bench database (PostgreSQL 14+ counts them; a backend reports at exit)."""
    with psycopg.connect(f"{PG}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", (DB_NAME,)).fetchone()
    return int(row[0] or 0) if row else 0


def broker() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=5)


# --- events --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signed:
    body: bytes
    signature: str


def events(template: dict, tag: str, count: int, start: int = 0) -> list[Signed]:
    """`count` unique customer.created events, serialised and signed once, now (Stripe's tolerance is 300 s).

    `tag` (3 characters) keeps ids unique per batch while every batch has the same body sizes.
    """
    assert len(tag) == 3
    now = int(time.time())
    out = []
    for i in range(start, start + count):
        n = f"{tag}{i:06d}"
        event = copy.deepcopy(template)
        customer = f"cus_bench_{n}"
        event.update(id=f"evt_bench_{n}", created=now, livemode=True)  # a live endpoint ignores test-mode events
        obj = event["data"]["object"]
        obj.update(id=customer, email=f"bench+{n}@example.com", name=f"Bench Customer {n}", created=now)
        obj["default_source"]["customer"] = customer
        for source in obj["sources"]["data"]:
            source["customer"] = customer
        obj["sources"]["url"] = f"/v1/customers/{customer}/sources"
        body = json.dumps(event, indent=2)  # Stripe sends pretty-printed JSON
        out.append(Signed(body=body.encode(), signature=WebhookSignature.generate_signature_header(body, SECRET)))
    return out


# --- load ----------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    target: str
    requests: int
    seconds: float
    latencies: list[float]
    statuses: Counter = field(default_factory=Counter)  # HTTP status, or the client error's name
    bodies: Counter = field(default_factory=Counter)  # the 2xx answers (they are tiny)
    cpu: Cpu = field(default_factory=Cpu)
    processes: str = ""  # members_line of the server's processes

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def non_2xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if not (isinstance(status, int) and 200 <= status < 300))

    def pct(self, p: float) -> float:
        """Nearest-rank percentile, in milliseconds."""
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000 if ordered else float("nan")


async def _load(
    url: str, batch: list[Signed], concurrency: int, timeout: float, deadline: float
) -> tuple[float, list, Counter, Counter]:
    """Send `batch` over `concurrency` connections; what is not sent by `deadline` (perf_counter) counts as an
    error, so a stuck server cannot hold the benchmark."""
    queue: asyncio.Queue[Signed] = asyncio.Queue()
    for item in batch:
        queue.put_nowait(item)
    latencies: list[float] = []
    statuses: Counter = Counter()
    bodies: Counter = Counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:

        async def worker() -> None:
            while True:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                if time.perf_counter() > deadline:
                    statuses["not sent: phase deadline"] += 1
                    continue
                headers = {"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": item.signature}
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=item.body, headers=headers) as resp:
                        answer = await resp.read()
                        status: int | str = resp.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status, answer = type(exc).__name__, b""
                latencies.append(time.perf_counter() - t0)
                statuses[status] += 1
                if isinstance(status, int) and 200 <= status < 300:
                    bodies[answer[:100]] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return elapsed, latencies, statuses, bodies


LOAD_PHASE_LIMIT = 300.0  # seconds; a healthy run of 3000 requests takes well under 30
REQUEST_TIMEOUT = 10.0


def load(target: str, proc: Proc, url: str, batch: list[Signed], concurrency: int) -> LoadResult:
    cpu0 = cpu_snapshot(proc.pid)
    members0 = members(proc)
    deadline = time.perf_counter() + LOAD_PHASE_LIMIT
    elapsed, latencies, statuses, bodies = asyncio.run(
        _load(url, batch, concurrency, timeout=REQUEST_TIMEOUT, deadline=deadline)
    )
    return LoadResult(
        target=target,
        requests=len(batch),
        seconds=elapsed,
        latencies=latencies,
        statuses=statuses,
        bodies=bodies,
        cpu=cpu_snapshot(proc.pid) - cpu0,
        processes=members_line(target, members0, members(proc), len(batch), "req"),
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


# --- the run -------------------------------------------------------------------------------------


def ingest(args, procs: dict[str, Proc], endpoint_path: str) -> tuple[LoadResult, LoadResult]:
    template = json.loads(FIXTURE.read_text())
    targets = [
        ("loopsync", procs["app"], f"http://{HOST}:{APP_PORT}{endpoint_path}", "app", "wua"),
        ("reference", procs["ref"], f"http://{HOST}:{REF_PORT}{endpoint_path}", "ref", "wur"),
    ]
    results = []
    for name, proc, url, tag, warm_tag in targets:
        warm = events(template, warm_tag, args.warmup)
        batch = events(template, tag, args.events)
        size = len(batch[0].body)
        say(f"  {name:<9} warm-up {args.warmup} requests, then {len(batch)} measured ({size} B bodies) → {url}")
        if warm:
            warmed = load(name, proc, url, warm, args.concurrency)
            if warmed.non_2xx:
                raise BenchError(f"{name}: warm-up answered non-2xx: {dict(warmed.statuses)}\n{proc.tail()}")
        result = load(name, proc, url, batch, args.concurrency)
        if result.non_2xx == result.requests:
            raise BenchError(f"{name}: every request failed: {dict(result.statuses)}\n{proc.tail()}")
        results.append(result)
    return results[0], results[1]


def report_ingest(app: LoadResult, ref: LoadResult, concurrency: int) -> None:
    say()
    say(f"Ingest: gunicorn {GUNICORN_WORKERS} sync workers each, {concurrency} concurrent connections (aiohttp)")
    say(f"  {'target':<10}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'server CPU ms/req':>19}")
    for r in (app, ref):
        say(
            f"  {r.target:<10}{r.requests:>9}{r.rps:>9.0f}{r.pct(50):>9.1f}{r.pct(99):>9.1f}{r.non_2xx:>9}"
            f"{r.cpu.target / r.requests * 1000:>19.2f}"
        )
    for r in (app, ref):
        other = {s: n for s, n in r.statuses.items() if not (isinstance(s, int) and 200 <= s < 300)}
        answers = ", ".join(f"{b.decode(errors='replace')} ×{n}" for b, n in r.bodies.most_common(3))
        say(f"  {r.target}: answers {answers}" + (f"; non-2xx {other}" if other else ""))
        say(f"  {r.target}: {r.seconds:.1f} s; {cpu_line(r.cpu, r.seconds, 'gunicorn')}")
        say(r.processes)
    say()
    for line in ingest_verdicts(app, ref):
        say(line)


def ingest_verdicts(app: LoadResult, ref: LoadResult) -> list[str]:
    ratio = app.rps / ref.rps if ref.rps else 0.0
    p99_limit = ref.pct(99) + TARGET_P99_OVER_REFERENCE_MS
    return [
        f"  ingest ratio loopsync/reference req/s {ratio:.2f}×   target ≥ {TARGET_RATIO:.1f}×: "
        f"{verdict(ratio >= TARGET_RATIO)}",
        f"  ingest loopsync p99 {app.pct(99):.1f} ms   target ≤ reference p99 + {TARGET_P99_OVER_REFERENCE_MS:.0f} ms "
        f"= {p99_limit:.1f} ms: {verdict(app.pct(99) <= p99_limit)}",
    ]


def worker_concurrency(proc: Proc) -> str:
    for line in proc.log.read_text(errors="replace").splitlines():
        if "concurrency:" in line:
            return line.split("concurrency:", 1)[1].strip()
    return f"default (os.cpu_count() = {os.cpu_count()})"


@dataclass(frozen=True)
class DrainResult:
    checks_ok: bool
    processed: int = 0
    failed: int = 0
    rate_active: float = 0.0  # processed / (max − min processed_at)
    rate_wall: float = 0.0  # processed / (max processed_at − worker start)
    concurrency: str = ""
    timed_out: bool = False


def drain(args, logdir: Path, procs: dict[str, Proc], team_id: int) -> DrainResult:
    """Start one Celery worker on the queued deliveries; time it until every one is processed."""
    with db() as conn:
        by_status = dict(conn.execute("SELECT status, count(*) FROM webhooks_delivery GROUP BY status").fetchall())
    queued = by_status.get("received", 0)
    depth = broker().llen(QUEUE)
    say()
    say(f"Drain: deliveries stored {by_status}; {depth} messages waiting in Redis queue {QUEUE!r}")
    if not queued:
        raise BenchError("Nothing to drain: no delivery is in status 'received'.")

    sessions0 = pg_sessions()
    cpu0 = cpu_snapshot(-1)
    started_at = time.time()
    started = time.monotonic()
    worker = start_worker(logdir)
    procs["worker"] = worker
    deadline = started + args.drain_timeout
    poll = (
        "SELECT count(*) FILTER (WHERE status = 'processed'), count(*) FILTER (WHERE status = 'failed'), "
        "count(*) FILTER (WHERE status IN ('received', 'processing')) FROM webhooks_delivery"
    )
    with db() as conn:
        while True:
            processed, failed, pending = conn.execute(poll).fetchone()
            if not pending:
                break
            if not worker.alive():
                raise BenchError(f"The Celery worker exited ({worker.popen.returncode}):\n{worker.tail()}")
            if time.monotonic() > deadline:
                say(
                    f"  TIMEOUT after {args.drain_timeout:.0f} s: "
                    f"{processed} processed, {failed} failed, {pending} left"
                )
                return DrainResult(checks_ok=False, processed=processed, failed=failed, timed_out=True)
            time.sleep(0.2)
        polled_wall = time.monotonic() - started
        first, last = conn.execute(
            "SELECT min(processed_at), max(processed_at) FROM webhooks_delivery WHERE status = 'processed'"
        ).fetchone()
        errors = conn.execute(
            "SELECT last_error, count(*) FROM webhooks_delivery WHERE status = 'failed' "
            "GROUP BY 1 ORDER BY 2 DESC LIMIT 3"
        ).fetchall()
        contacts = conn.execute("SELECT count(*) FROM contacts_contact WHERE team_id = %s", (team_id,)).fetchone()[0]
        fired = conn.execute(
            "SELECT count(*) FROM loops_event WHERE team_id = %s AND name = %s", (team_id, TRIGGER)
        ).fetchone()[0]
        reference_rows = conn.execute("SELECT count(*) FROM bench_reference_delivery").fetchone()[0]
    cpu = cpu_snapshot(worker.pid) - cpu0
    concurrency = worker_concurrency(worker)
    processes = members_line("celery worker", {}, members(worker), processed + failed, "event")
    worker.stop()
    sessions = pg_sessions() - sessions0 - 1  # less the poller's own session

    active = (last - first).total_seconds() if processed else 0.0
    boot = first.timestamp() - started_at if processed else float("nan")
    to_last = last.timestamp() - started_at if processed else polled_wall
    rate_active = processed / active if active > 0 else 0.0
    rate_wall = processed / to_last if to_last > 0 else 0.0
    say(f"  one Celery worker, prefork concurrency: {concurrency}")
    say(f"  processed {processed}, failed {failed}")
    for error, count in errors:
        say(f"    FAILED ×{count}: {' '.join(error.split())[:300]}")
    say(f"  worker start → first processed: {boot:.2f} s (boot, connect, first task)")
    say(f"  first → last processed_at: {active:.2f} s")
    say(f"  worker start → last processed_at: {to_last:.2f} s (polling saw it done at {polled_wall:.1f} s)")
    say(f"  drain rate, first→last processed (processed / (max − min processed_at)): {rate_active:.0f} events/s")
    say(f"  drain rate, incl. worker boot (processed / (last processed_at − worker start)): {rate_wall:.0f} events/s")
    say(f"  worker start → done: {cpu_line(cpu, polled_wall, 'celery worker')}")
    say(processes + " (incl. boot)")
    ran = max(processed + failed, 1)
    say(
        f"  celery worker CPU (all its processes, incl. boot): {cpu.target / ran * 1000:.2f} ms/event; "
        f"postgres {cpu.postgres / ran * 1000:.2f} ms/event"
    )
    say(
        f"  postgres sessions opened during the drain: ≈{sessions} (≈{sessions / ran:.1f} per event; "
        f"the worker has {concurrency.split()[0]} processes)"
    )
    say(f"  target ≥ {TARGET_DRAIN_PER_S:.0f} events/s (first→last): {verdict(rate_active >= TARGET_DRAIN_PER_S)}")

    expected = args.events + args.warmup
    checks = [
        ("deliveries processed", processed, expected),
        ("contacts in the team", contacts, expected),
        (f"loops_event rows ({TRIGGER})", fired, expected),
        ("reference rows", reference_rows, expected),
    ]
    say()
    say(f"Checks (expected {args.events} + {args.warmup} warm-up = {expected} each):")
    good = True
    for label, got, want in checks:
        say(f"  {label:<36} {got:>7}  {'OK' if got == want else 'MISMATCH'}")
        good &= got == want
    return DrainResult(
        checks_ok=good,
        processed=processed,
        failed=failed,
        rate_active=rate_active,
        rate_wall=rate_wall,
        concurrency=concurrency,
    )


def summary(args, app: LoadResult, ref: LoadResult, drained: DrainResult, e2e: "EndToEnd | None") -> None:
    say()
    say(
        f"Summary ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs; {args.events} events per target, "
        f"{args.concurrency} connections; gunicorn {GUNICORN_WORKERS} sync workers; settings {args.settings}):"
    )
    for r in (app, ref):
        say(
            f"  ingest {r.target:<10} {r.rps:6.0f} req/s   p50 {r.pct(50):6.1f} ms   p99 {r.pct(99):6.1f} ms   "
            f"non-2xx {r.non_2xx}   server CPU {r.cpu.target / r.requests * 1000:.2f} ms/req"
        )
    for line in ingest_verdicts(app, ref):
        say(line)
    if drained.timed_out:
        say(f"  drain  TIMED OUT after {args.drain_timeout:.0f} s ({drained.processed} processed)")
    else:
        say(
            f"  drain  {drained.rate_active:.0f} events/s first→last processed "
            f"({drained.rate_wall:.0f} incl. worker boot), one worker, concurrency {drained.concurrency}; "
            f"{drained.processed} processed, {drained.failed} failed   "
            f"target ≥ {TARGET_DRAIN_PER_S:.0f}/s: {verdict(drained.rate_active >= TARGET_DRAIN_PER_S)}"
        )
    if e2e is not None:
        for line in e2e.verdicts(ref.rps):
            say(line)


# --- end to end: web and one worker at once ----------------------------------------------------------

E2E_CHUNK = 5000  # events signed just before they are sent: Stripe's tolerance is 300 s, a long run takes more


@dataclass
class EndToEnd:
    events: int
    seconds: float  # first delivery received → last processed
    send_seconds: float
    processed: int
    checks_ok: bool
    timed_out: bool
    rss: list[tuple[str, float, float, float]]  # process, MB after the warm-up, peak, at the end
    processes: list[str]  # members_line of the server and the worker

    @property
    def rate(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def rss_ok(self) -> bool:
        return all(end - base <= RSS_GROWTH_LIMIT_MB for _, base, _, end in self.rss)

    def verdicts(self, reference_rps: float) -> list[str]:
        if self.timed_out:
            return [f"  end to end TIMED OUT ({self.processed} of {self.events} processed)"]
        ratio = self.rate / reference_rps if reference_rps else 0.0
        growth = max((end - base for _, base, _, end in self.rss), default=0.0)
        return [
            f"  end to end {self.rate:.0f} events/s over {self.events} events (web and one worker on the same cores, "
            f"first received → last processed) = {ratio:.2f}× the reference's ingest   target ≥ {TARGET_E2E_RATIO}×: "
            f"{verdict(ratio >= TARGET_E2E_RATIO)}",
            f"  memory: largest RSS growth of a process over the run {growth:+.1f} MB   target ≤ "
            f"{RSS_GROWTH_LIMIT_MB:.0f} MB: {verdict(self.rss_ok())}",
        ]


def _pending(conn: psycopg.Connection, like: str) -> tuple[int, int]:
    processed, pending = conn.execute(
        "SELECT count(*) FILTER (WHERE status IN ('processed', 'failed', 'ignored')), "
        "count(*) FILTER (WHERE status IN ('received', 'processing')) FROM webhooks_delivery "
        "WHERE stripe_event_id LIKE %s",
        (like,),
    ).fetchone()
    return processed, pending


def _wait_processed(like: str, expected: int, worker: Proc, deadline: float, sample) -> tuple[int, bool]:
    """Poll until `expected` deliveries matching `like` are done; (done, timed out)."""
    with db() as conn:
        while True:
            done, pending = _pending(conn, like)
            if done >= expected and not pending:
                return done, False
            if not worker.alive():
                raise BenchError(f"The Celery worker exited ({worker.popen.returncode}):\n{worker.tail()}")
            if time.monotonic() > deadline:
                return done, True
            sample()
            time.sleep(0.2)


def end_to_end(args, logdir: Path, procs: dict[str, Proc], endpoint_path: str, team_id: int) -> EndToEnd:
    """Start the web server and one worker together, warm them up, then send `--e2e-events` webhooks and time
    them from the first one received to the last one processed, reading each process's RSS as it goes."""
    template = json.loads(FIXTURE.read_text())
    url = f"http://{HOST}:{APP_PORT}{endpoint_path}"
    say()
    workers = f"gunicorn ({GUNICORN_WORKERS} sync workers) and one Celery worker at once"
    say(f"End to end: {workers}, {args.e2e_events} events")
    procs["app"] = start_app(logdir, "gunicorn-app-e2e")
    procs["worker"] = start_worker(logdir, "celery-worker-e2e")
    wait_http(procs["app"], f"http://{HOST}:{APP_PORT}/healthz")
    app, worker = procs["app"], procs["worker"]
    warm = None
    if args.warmup:
        warm = load("e2e warm-up", app, url, events(template, "e2w", args.warmup), args.concurrency)
    if warm is not None and warm.non_2xx:
        raise BenchError(f"end to end: warm-up answered non-2xx: {dict(warm.statuses)}\n{app.tail()}")
    _wait_processed("evt_bench_e2w%", args.warmup, worker, time.monotonic() + args.drain_timeout, lambda: None)

    readings: dict[str, list[float]] = {}

    def sample() -> None:
        for proc in (app, worker):
            for member in members(proc).values():
                readings.setdefault(f"{proc.name.split('-')[0]} {member.label}", []).append(member.rss_mb)

    sample()
    before = {"app": members(app), "worker": members(worker)}
    sent = 0
    send_started = time.perf_counter()
    statuses: Counter = Counter()
    while sent < args.e2e_events:
        count = min(E2E_CHUNK, args.e2e_events - sent)
        result = load("e2e", app, url, events(template, "e2e", count, start=sent), args.concurrency)
        statuses.update(result.statuses)
        sent += count
        sample()
    send_seconds = time.perf_counter() - send_started
    done, timed_out = _wait_processed(
        "evt_bench_e2e%", args.e2e_events, worker, time.monotonic() + args.drain_timeout, sample
    )
    sample()
    processes = [
        members_line("gunicorn", before["app"], members(app), args.e2e_events, "event"),
        members_line("celery worker", before["worker"], members(worker), args.e2e_events, "event"),
    ]
    with db() as conn:
        first, last, processed = conn.execute(
            "SELECT min(received_at), max(processed_at), count(*) FILTER (WHERE status = 'processed') "
            "FROM webhooks_delivery WHERE stripe_event_id LIKE 'evt_bench_e2e%'"
        ).fetchone()
        contacts = conn.execute(
            "SELECT count(*) FROM contacts_contact WHERE team_id = %s AND email LIKE 'bench+e2e%%'", (team_id,)
        ).fetchone()[0]
        fired = conn.execute(
            "SELECT count(*) FROM loops_event WHERE team_id = %s AND name = %s "
            "AND idempotency_key LIKE 'evt_bench_e2e%%'",
            (team_id, TRIGGER),
        ).fetchone()[0]
    procs.pop("app").stop()
    procs.pop("worker").stop()
    seconds = (last - first).total_seconds() if processed and last and first else 0.0
    rss = [(name, values[0], max(values), values[-1]) for name, values in sorted(readings.items())]
    result = EndToEnd(
        events=args.e2e_events,
        seconds=seconds,
        send_seconds=send_seconds,
        processed=processed,
        checks_ok=not timed_out and processed == contacts == fired == args.e2e_events,
        timed_out=timed_out,
        rss=rss,
        processes=processes,
    )
    non_2xx = sum(n for status, n in statuses.items() if status != 200)
    say(f"  sent {sent} in {send_seconds:.1f} s ({sent / send_seconds:.0f} req/s, worker running), non-2xx {non_2xx}")
    say(f"  first received → last processed: {seconds:.1f} s = {result.rate:.0f} events/s")
    for line in processes:
        say(line)
    say("  RSS (MB) per process: after the warm-up → peak → at the end")
    for name, base, peak, end in rss:
        say(f"    {name:<28} {base:7.1f} → {peak:7.1f} → {end:7.1f}  ({end - base:+.1f})")
    say(
        f"  checks: processed {processed}, contacts {contacts}, {TRIGGER} events {fired} (expected {args.e2e_events} "
        f"each): {'OK' if result.checks_ok else 'MISMATCH'}"
    )
    return result


def start_app(logdir: Path, name: str = "gunicorn-app") -> Proc:
    common = ["-w", str(GUNICORN_WORKERS), "--log-level", "warning"]
    argv = [str(BIN / "gunicorn"), "loopsync.wsgi:application", "-b", f"{HOST}:{APP_PORT}", *common]
    return start(name, argv, logdir)


def start_worker(logdir: Path, name: str = "celery-worker") -> Proc:
    return start(name, [str(BIN / "celery"), "-A", "loopsync", "worker", "-Q", QUEUE, "--loglevel=WARNING"], logdir)


def _interrupted(signum, frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=3000, help="measured events per target (default 3000)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent connections (default 16)")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured warm-up requests per target (default 100)")
    parser.add_argument(
        "--drain-timeout", type=float, default=300.0, help="give up draining after this (default 300 s)"
    )
    parser.add_argument(
        "--e2e-events",
        type=int,
        default=None,
        help="events of the end-to-end phase (default: --events; 50000 for the memory check; 0 skips it)",
    )
    parser.add_argument(
        "--settings",
        default="loopsync.settings",
        help="Django settings module for every process (default loopsync.settings): try a configuration change "
        "without editing settings.py; a module outside the project needs PYTHONPATH",
    )
    parser.add_argument("--keep", action="store_true", help=f"keep the {DB_NAME} database and Redis db {REDIS_DB}")
    args = parser.parse_args()
    if args.events < 1 or args.concurrency < 1 or args.warmup < 0:
        parser.error("--events and --concurrency must be positive, --warmup not negative")
    if args.e2e_events is None:
        args.e2e_events = args.events
    if args.e2e_events < 0:
        parser.error("--e2e-events must not be negative")

    SETTINGS["module"] = args.settings
    # Ctrl-C or a kill stops the run and still cleans up. Installed before asyncio.run, which then leaves SIGINT
    # alone (its own handler only cancels the load, and an interrupt landing as a phase ends is lost).
    signal.signal(signal.SIGINT, _interrupted)
    signal.signal(signal.SIGTERM, _interrupted)
    logdir = Path(tempfile.mkdtemp(prefix="loopsync-bench-"))
    procs: dict[str, Proc] = {}
    ok = True
    try:
        say(
            f"LoopSync benchmark — {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} CPUs; "
            f"server and worker logs in {logdir} (kept when something breaks or with --keep)"
        )
        say(
            f"  {args.events} events per target, {args.concurrency} connections, {args.warmup} warm-up requests each; "
            f"settings {args.settings}"
        )
        for port in (APP_PORT, REF_PORT):
            if port_busy(port):
                raise BenchError(f"Something already listens on {HOST}:{port}; stop it first.")
        broker().flushdb()
        db_create()
        manage("migrate", "--noinput")
        with db() as conn:
            conn.execute(REFERENCE_TABLE)
        out = manage(
            "stripe_endpoint",
            "create",
            "--team",
            "Bench",
            "--secret",
            SECRET,
            "--trigger",
            f"customer.created={TRIGGER}",
        )
        endpoint_path = out.strip().splitlines()[-1].strip()
        if not endpoint_path.startswith("/webhooks/stripe/"):
            raise BenchError(f"Unexpected stripe_endpoint output:\n{out}")
        team_id = scalar("SELECT id FROM accounts_team WHERE name = 'Bench'")
        say(f"  database {DB_NAME} migrated; endpoint {endpoint_path}; broker {REDIS_URL}, queue {QUEUE!r}")

        common = ["-w", str(GUNICORN_WORKERS), "--log-level", "warning"]
        procs["app"] = start_app(logdir)
        procs["ref"] = start(
            "gunicorn-reference",
            [
                str(BIN / "gunicorn"),
                "--chdir",
                str(BENCH_DIR),
                "reference_app:application",
                "-b",
                f"{HOST}:{REF_PORT}",
                *common,
            ],
            logdir,
        )
        wait_http(procs["app"], f"http://{HOST}:{APP_PORT}/healthz")
        wait_http(procs["ref"], f"http://{HOST}:{REF_PORT}/")
        say(f"  gunicorn up: loopsync on :{APP_PORT}, reference on :{REF_PORT} ({GUNICORN_WORKERS} workers each)")

        app, ref = ingest(args, procs, endpoint_path)
        # Nothing listens during the drain but the worker.
        procs.pop("app").stop()
        procs.pop("ref").stop()
        report_ingest(app, ref, args.concurrency)
        drained = drain(args, logdir, procs, team_id)
        e2e = end_to_end(args, logdir, procs, endpoint_path, team_id) if args.e2e_events else None
        summary(args, app, ref, drained, e2e)
        ok = drained.checks_ok and (e2e is None or e2e.checks_ok)
        if not ok:
            say("\nSomething broke: see the checks above (exit 1).")
    except BenchError as exc:
        say(f"\nBENCHMARK BROKE: {exc}")
        ok = False
    except KeyboardInterrupt as exc:
        say(f"\nInterrupted ({exc or 'SIGINT'}); stopping what was started.")
        ok = False
    finally:
        for proc in reversed(list(procs.values())):
            proc.stop()
        if not args.keep:
            try:
                db_drop()
                broker().flushdb()
            except (psycopg.Error, redis.RedisError) as exc:
                say(f"Cleanup failed: {exc}")
                ok = False
        else:
            say(f"Kept database {DB_NAME}, Redis db {REDIS_DB} and the logs in {logdir} (--keep).")
        if ok and not args.keep:
            shutil.rmtree(logdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
