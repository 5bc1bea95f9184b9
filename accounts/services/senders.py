"""Sender addresses: which From a team may use, and the team's own verified domains.

A From is allowed when its domain is, exactly (no subdomains), one the operator lists in
ALLOWED_SENDER_DOMAINS or one the team verified by publishing a TXT record. A blank From always
sends as DEFAULT_FROM_EMAIL.
"""

import logging
import math
import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from loopsync import work

from ..dns_lookup import LookupFailed, txt_records
from ..models import SenderDomain, Team

logger = logging.getLogger(__name__)

LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
WHERE = "Settings → Sending"


def domain_normalize(value: str) -> str:
    """`value` as stored and compared: lower case, no trailing dot, IDNA (xn--…) for non-ASCII.
    Raises ValidationError when it is not a domain name."""
    domain = value.strip().lower().rstrip(".")
    if "@" in domain or "/" in domain or ":" in domain:
        raise ValidationError("Enter the domain only, e.g. example.com (not an address or a URL).")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValidationError(f"{value.strip()} is not a domain name.") from exc
    labels = domain.split(".")
    if len(domain) > 253 or len(labels) < 2 or not all(LABEL.fullmatch(label) for label in labels):
        raise ValidationError(f"{value.strip() or 'This'} is not a domain name, such as example.com.")
    if labels[-1].isdigit():
        raise ValidationError("Enter a domain name, not an IP address.")
    return domain


def _email_domain(email: str) -> str | None:
    _, at, domain = email.strip().rpartition("@")
    if not at:
        return None
    try:
        return domain_normalize(domain)
    except ValidationError:
        return None


def sender_email_problem(*, team_id: int | None, email: str) -> str | None:
    """Why `team_id` may not send as `email`, for the user; None when it may (a blank From may)."""
    if not email.strip():
        return None
    domain = _email_domain(email)
    if domain is None:
        return "Enter a valid email address, or leave From blank to use the default sender."
    if domain in settings.ALLOWED_SENDER_DOMAINS:
        return None
    sender_domain = SenderDomain.objects.filter(team_id=team_id, domain=domain).first() if team_id else None
    if sender_domain is not None and sender_domain.verified_at is not None:
        return None
    if sender_domain is not None:
        return (
            f"{domain} is not verified yet: publish its TXT record and verify it in {WHERE}, "
            "or leave From blank to use the default sender."
        )
    return (
        f"{domain} is not a sender domain of this team: verify {domain} in {WHERE}, "
        "or leave From blank to use the default sender."
    )


def sender_email_allowed(*, team_id: int | None, email: str) -> bool:
    return sender_email_problem(team_id=team_id, email=email) is None


def sender_domain_add(*, team: Team, domain: str) -> SenderDomain:
    """A new, unverified domain for `team`, with the token its TXT record must carry."""
    domain = domain_normalize(domain)
    if domain in settings.ALLOWED_SENDER_DOMAINS:
        raise ValidationError(
            f"{domain} is allowed for every team on this installation (ALLOWED_SENDER_DOMAINS): "
            "there is nothing to verify."
        )
    limit = settings.SENDER_DOMAINS_MAX
    if SenderDomain.objects.filter(team=team).count() >= limit:
        raise ValidationError(
            f"A team has at most {limit} sender domains (SENDER_DOMAINS_MAX). Delete one you no longer use first."
        )
    try:
        with transaction.atomic():
            return SenderDomain.objects.create(team=team, domain=domain, token=secrets.token_hex(16))
    except IntegrityError as exc:
        raise ValidationError(f"{domain} is added already.") from exc


def sender_domain_check_request(*, sender_domain: SenderDomain) -> SenderDomain:
    """Verify: have a worker look the TXT record up (accounts.tasks.check_sender_domain), once the claim
    commits. The caller never waits on DNS. A domain is checked at most once per
    SENDER_DOMAIN_CHECK_INTERVAL seconds, however often and by however many people Verify is pressed: the
    claim is one conditional update, so two presses at once enqueue one check. Raises ValidationError,
    saying when to try again, inside the interval."""
    interval = settings.SENDER_DOMAIN_CHECK_INTERVAL
    now = timezone.now()
    claimed = (
        SenderDomain.objects.filter(pk=sender_domain.pk)
        .filter(Q(check_requested_at__isnull=True) | Q(check_requested_at__lte=now - timedelta(seconds=interval)))
        .update(check_requested_at=now, check_pending=True)
    )
    if claimed != 1:
        requested = SenderDomain.objects.filter(pk=sender_domain.pk).values_list("check_requested_at", flat=True)
        requested_at = requested.first()
        if requested_at is None:
            raise ValidationError(f"{sender_domain.domain} was deleted meanwhile.")
        wait = min(interval, max(1, math.ceil(interval - (now - requested_at).total_seconds())))
        raise ValidationError(
            f"{sender_domain.domain} was checked less than {interval} s ago (SENDER_DOMAIN_CHECK_INTERVAL); "
            f"try again in {wait} s."
        )
    pk = sender_domain.pk
    transaction.on_commit(lambda: _check_enqueue(pk))
    sender_domain.check_requested_at, sender_domain.check_pending = now, True
    return sender_domain


def _check_enqueue(sender_domain_id: int) -> None:
    if not work.enqueue(work.CHECK_SENDER_DOMAIN, sender_domain_id):
        # Nothing will answer this claim: say so now rather than leave the domain "Checking…".
        SenderDomain.objects.filter(pk=sender_domain_id, check_pending=True).update(
            check_pending=False,
            last_error="The check could not start (the task queue is unavailable); try again later.",
        )


def sender_domain_verify(*, sender_domain: SenderDomain) -> SenderDomain:
    """Look for the domain's TXT record and mark it verified when it is there; answers a pending check.
    Runs in a worker (accounts.tasks), outside any transaction: the lookup takes at most
    SENDER_DOMAIN_DNS_TIMEOUT, and the outcome is saved with one update. Once verified, a domain stays
    verified (a later failed check records the error only): delete it to stop sending from it. A domain
    deleted meanwhile is left alone (the update matches nothing)."""
    now = timezone.now()
    domain = sender_domain.domain
    try:
        records = txt_records(domain)
    except LookupFailed as exc:
        error = str(exc)
    else:
        found = any(record.strip() == sender_domain.txt_value for record in records)
        others = f" (it has {len(records)} other TXT record{'s' if len(records) != 1 else ''})" if records else ""
        error = (
            ""
            if found
            else f"No TXT record {sender_domain.txt_value} on {domain} yet{others}. "
            "DNS changes can take a while to reach everyone: try again in a few minutes."
        )
    changes = {"last_checked_at": now, "last_error": error[:500], "check_pending": False}
    if not error and sender_domain.verified_at is None:
        changes["verified_at"] = now
    SenderDomain.objects.filter(pk=sender_domain.pk).update(**changes)
    for field, value in changes.items():
        setattr(sender_domain, field, value)
    return sender_domain


def sender_domain_delete(*, sender_domain: SenderDomain) -> None:
    """Emails already set to send from this domain fall back to the default sender (loops.services.queueing)."""
    sender_domain.delete()
