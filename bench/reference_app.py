"""A bare Stripe webhook receiver: the floor the benchmark compares LoopSync's ingest against.

Plain WSGI, no framework. POST: verify the Stripe signature, parse the JSON, INSERT one row, answer
200. GET: a health check. One psycopg connection per worker process, opened on first use, in
autocommit (one INSERT is one transaction, like the app's one `Delivery` row per request).

Configured from the environment (bench/run.py sets these):
    DATABASE_URL           postgres://postgres@127.0.0.1:5432/loopsync_bench
    BENCH_SIGNING_SECRET   the whsec_… secret the events are signed with

Run: gunicorn --chdir bench reference_app:application -w 3 -b 127.0.0.1:8102
The table (created by run.py):
    bench_reference_delivery (id bigserial primary key, stripe_event_id text unique, event_type text,
                              payload jsonb, received_at timestamptz default now())
"""

import json
import os

import psycopg
from psycopg.types.json import Jsonb
from stripe import SignatureVerificationError, WebhookSignature

DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/loopsync_bench")
SECRET = os.environ.get("BENCH_SIGNING_SECRET", "whsec_bench_secret_000000")
TOLERANCE = 300
MAX_BODY = 1024 * 1024

INSERT = (
    "INSERT INTO bench_reference_delivery (stripe_event_id, event_type, payload) VALUES (%s, %s, %s) "
    "ON CONFLICT (stripe_event_id) DO NOTHING"
)

_conn: psycopg.Connection | None = None


def _connection() -> psycopg.Connection:
    """This worker's connection, opened lazily (after gunicorn forks), reopened if it broke."""
    global _conn
    if _conn is None or _conn.closed or _conn.broken:
        _conn = psycopg.connect(DATABASE_URL, autocommit=True)
    return _conn


def _answer(start_response, status: str, payload: dict) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    method = environ["REQUEST_METHOD"]
    if method == "GET":
        return _answer(start_response, "200 OK", {"ok": True})
    if method != "POST":
        return _answer(start_response, "405 Method Not Allowed", {"error": "POST only."})
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY:
        return _answer(start_response, "413 Request Entity Too Large", {"error": "Too large."})
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    try:
        WebhookSignature.verify_header(body, environ.get("HTTP_STRIPE_SIGNATURE"), SECRET, tolerance=TOLERANCE)
        payload = json.loads(body)
        event_id, event_type = payload["id"], payload["type"]
    except SignatureVerificationError as exc:
        return _answer(start_response, "400 Bad Request", {"error": f"Invalid signature: {exc}"})
    except (ValueError, TypeError, KeyError):
        return _answer(start_response, "400 Bad Request", {"error": "Not a Stripe event in JSON."})
    try:
        _connection().execute(INSERT, (event_id, event_type, Jsonb(payload)))
    except psycopg.OperationalError:
        # The connection dropped (server restart, idle timeout): reconnect once and retry.
        _connection().execute(INSERT, (event_id, event_type, Jsonb(payload)))
    return _answer(start_response, "200 OK", {"status": "stored"})
