"""Log-in throttling with django-axes: the settings are in loopsync/settings.py (LOGIN_FAILURE_LIMIT,
LOGIN_COOLOFF_MINUTES, AXES_*); this module is the three places axes lets the project decide:

- `client_ip`: whose address a failure counts against, behind TRUSTED_PROXY_COUNT proxies;
- `LoginThrottleHandler`: what a successful log-in resets;
- `lockout_response`: the page a locked-out log-in gets: the log-in form again, 429 with Retry-After,
  saying which lock applies and when to try again.
"""

import ipaddress
import math
from datetime import datetime

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.db.models import Max, QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone


def client_ip(request: HttpRequest) -> str | None:
    """The address a failed log-in counts against.

    Without a trusted proxy (TRUSTED_PROXY_COUNT=0) that is the connection's address: X-Forwarded-For is
    whatever the client wrote. Behind N proxies, each appending the address it received the request from,
    the N-th entry from the right is the one the outermost proxy saw; entries further left came from the
    client and are ignored. Anything that is not an IP address falls back to the connection's address.
    """
    remote = request.META.get("REMOTE_ADDR")
    count = settings.TRUSTED_PROXY_COUNT
    if not count:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    if not hops:
        return remote
    candidate = hops[-count] if len(hops) >= count else hops[0]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


class LoginThrottleHandler(AxesDatabaseHandler):
    """axes' database handler, except for what a successful log-in resets.

    axes resets every attempt that matches any lockout parameter, so one good log-in from an address would
    wipe that address's failures against every other account too. Anyone can sign up, so an attacker could
    clear the IP lock with an account of their own between guesses. Here a success clears only the failures
    of the account that logged in.
    """

    def reset_user_attempts(self, request: HttpRequest, credentials: dict | None = None) -> int:
        username = get_client_username(request, credentials)
        if not username:
            return 0
        count, _ = AccessAttempt.objects.filter(username=username).delete()
        return count


def _lock(attempts: QuerySet, limit: int) -> datetime | None:
    """When the failures in `attempts` were last added to, if they have reached the limit."""
    totals = attempts.aggregate(failures=Sum("failures_since_start"), last=Max("attempt_time"))
    return totals["last"] if (totals["failures"] or 0) >= limit else None


def lockout_message(request: HttpRequest, credentials: dict | None = None) -> tuple[str, int]:
    """Which lock applies (the account, the address, or both) and when a log-in can be tried again; and the
    seconds until then."""
    limit, cooloff = settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME
    now = timezone.now()
    recent = AccessAttempt.objects.filter(attempt_time__gte=now - cooloff)
    username = get_client_username(request, credentials)
    ip_address = getattr(request, "axes_ip_address", None)
    locks = {
        "this account": _lock(recent.filter(username=username), limit) if username else None,
        "your IP address": _lock(recent.filter(ip_address=ip_address), limit) if ip_address else None,
    }
    locked = [what for what, last in locks.items() if last]
    retry_at = max((last for last in locks.values() if last), default=now) + cooloff
    seconds = max(1, math.ceil((retry_at - now).total_seconds()))
    minutes = math.ceil(seconds / 60)
    message = (
        f"Log-in is temporarily locked for {' and '.join(locked) or 'this account or your IP address'}: "
        f"too many failed attempts ({limit}, LOGIN_FAILURE_LIMIT). "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}, after "
        f"{timezone.localtime(retry_at):%H:%M %Z} (the lock lasts {settings.LOGIN_COOLOFF_MINUTES} minutes "
        "after the last failed attempt, LOGIN_COOLOFF_MINUTES)."
    )
    return message, seconds


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """The page a locked-out log-in gets: the log-in form it was posted from, again, with status 429 and the
    lockout message as the form's error. That is /login/'s or the admin's own page (their TemplateResponse
    keeps its template and context); anything else gets /login/'s."""
    message, retry_after = lockout_message(request, credentials)
    context = dict(getattr(original_response, "context_data", None) or {})
    template = getattr(original_response, "template_name", None)
    form = context.get("form")
    if template and isinstance(form, AuthenticationForm) and form.is_bound:
        form.errors.clear()  # "wrong password" would be untrue: the password was never checked
        form.add_error(None, ValidationError(message, code="locked_out"))
    else:
        username = get_client_username(request, credentials) or ""
        template = "registration/login.html"
        context = {"form": AuthenticationForm(request, initial={"username": username}), "next": ""}
    context["lockout_message"] = message
    response = render(request, template, context, status=settings.AXES_HTTP_RESPONSE_CODE)
    response["Retry-After"] = str(retry_after)
    return response
