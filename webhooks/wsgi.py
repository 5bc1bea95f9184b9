"""Stripe's POSTs answered in front of Django's request handling, as WhiteNoise serves static files.

A webhook needs none of what Django's handler does for a page: no session, user, team, CSRF, CSP or
messages middleware, no URL resolver, no request signals (whose connection health check is one more query
per request). `StripeWebhooks` wraps the WSGI application (loopsync/wsgi.py): a POST to a receive URL is
answered here by `receiving.webhook_answer`, the same function the view calls, so both give the same
answers; every other request goes to Django untouched. (A webhook was never redirected to HTTPS:
SECURE_REDIRECT_EXEMPT names the webhook path, as Stripe does not follow a redirect.)

The database connection is Django's own (`django.db.connection`), kept between requests like any
persistent connection: `webhook_answer` retries once on a fresh connection when a kept one turns out to
be dead, and this wrapper closes it once it is older than CONN_MAX_AGE, as the request signals would.
"""

import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.http.request import split_domain_port, validate_host
from django.urls import reverse

from .services import receiving

request_logger = logging.getLogger("django.request")  # where the admins' handlers look for a 500

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # Django's <uuid:> converter
_ZERO = UUID(int=0)
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    413: "Request Entity Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def receive_path_pattern() -> re.Pattern[str]:
    """The receive URL as a regex, from the URLconf (with or without its slash, as urls.py takes it)."""
    path = reverse("webhooks:stripe-receive", kwargs={"endpoint_uuid": _ZERO})
    prefix, _, suffix = path.partition(str(_ZERO))
    return re.compile(f"{re.escape(prefix)}(?P<uuid>{_UUID}){re.escape(suffix.rstrip('/'))}/?")


class StripeWebhooks:
    def __init__(self, application: WSGIApp) -> None:
        self.application = application
        self._pattern: re.Pattern[str] | None = None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return self.application(environ, start_response)
        if self._pattern is None:
            self._pattern = receive_path_pattern()
        match = self._pattern.fullmatch(environ.get("PATH_INFO", ""))
        if match is None:
            return self.application(environ, start_response)
        if not _host_allowed(environ):  # as Django's CommonMiddleware refuses it (DisallowedHost)
            return self.application(environ, start_response)
        try:
            status, answer = receiving.webhook_answer(
                endpoint_uuid=UUID(match["uuid"]),
                read=_reader(environ),
                declared_length=environ.get("CONTENT_LENGTH"),
                signature=environ.get("HTTP_STRIPE_SIGNATURE"),
            )
        except Exception:  # what Django's handler would turn into a 500, logged where it logs one
            request_logger.exception("Internal Server Error: %s", environ.get("PATH_INFO"))
            if not connection.in_atomic_block:
                connection.close()
            status, answer = 500, {"error": "Internal error; the webhook was not stored. Retry later."}
        self._recycle()
        body = json.dumps(answer).encode()
        start_response(
            f"{status} {_REASONS.get(status, '')}".rstrip(),
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("X-Content-Type-Options", "nosniff"),
            ],
        )
        return [body]

    @staticmethod
    def _recycle() -> None:
        """CONN_MAX_AGE, as `close_old_connections` applies it after a Django request (never inside a
        transaction: a test's)."""
        wrapper = connections[DEFAULT_DB_ALIAS]
        if wrapper.close_at is not None and time.monotonic() >= wrapper.close_at and not wrapper.in_atomic_block:
            wrapper.close()


def _host_allowed(environ: dict[str, Any]) -> bool:
    """The request's Host is one of ALLOWED_HOSTS, as `HttpRequest.get_host` decides (a request that is not,
    Django answers with its 400)."""
    if settings.USE_X_FORWARDED_HOST and "HTTP_X_FORWARDED_HOST" in environ:
        host = environ["HTTP_X_FORWARDED_HOST"]
    elif "HTTP_HOST" in environ:  # present but empty is refused, as Django refuses it: no SERVER_NAME fallback
        host = environ["HTTP_HOST"]
    else:  # PEP 3333's reconstruction; the port it appends cannot change the domain that is checked
        host = environ.get("SERVER_NAME", "")
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    domain, _ = split_domain_port(host)
    return bool(domain) and validate_host(domain, allowed)


def _reader(environ: dict[str, Any]) -> Callable[[int], bytes]:
    """`read(n)` of the request body that never asks for more than CONTENT_LENGTH (PEP 3333)."""
    stream = environ["wsgi.input"]
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return stream.read  # no length (chunked): the server ends the stream
    return lambda size: stream.read(max(0, min(size, length)))
