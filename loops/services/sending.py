"""Email: send each queued message at most once (`queueing` records them, `unsubscribing` has their links).

A message is rendered when queued and claimed (queued → sending) before it is sent, outside any
transaction. A worker that dies after the claim leaves the row in `sending`; it is then marked failed,
never sent again: a missing email is better than a duplicate one.
"""

import contextlib
import logging
import smtplib
import threading
import time
from datetime import timedelta
from email.utils import make_msgid
from functools import partial

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from loopsync import work
from loopsync.site import absolute_url

from ..models import EmailMessage, LoopStep
from ..rendering import email_render
from .queueing import TEST_MODE_SKIPPED, is_member_address, sender_address
from .unsubscribing import TEST_EMAIL_LINK, unsubscribe_url

logger = logging.getLogger(__name__)

SEND_LEASE = timedelta(minutes=10)
SEND_RETRY = timedelta(minutes=1)  # then doubled for each attempt, up to an hour
RESERVE_LEASE = timedelta(minutes=2)
# A connection idle for longer is checked (NOOP) before it carries a message; back-to-back sends are not.
IDLE_CHECK_AFTER_SECONDS = 2.0
BATCH_SIZE = 50
DRAIN_BUDGET_SECONDS = 20
MAX_SEND_ATTEMPTS = 6


INTERRUPTED_SEND = (
    "The task's time limit (CELERY_TASK_SOFT_TIME_LIMIT) stopped this send; not retried, so it is never sent twice."
)


class TemporarySendError(Exception):
    """The provider could not take the message now (connection, 4xx); it may later."""


# --- sending -------------------------------------------------------------------------------------


def email_claim(*, message_id: int) -> bool:
    """queued → sending, committed before the send: the one durable step that keeps an email from going twice."""
    return work.update_row(
        EmailMessage,
        message_id,
        where={"status": EmailMessage.Status.QUEUED},
        values={"status": EmailMessage.Status.SENDING, "next_attempt_at": timezone.now() + SEND_LEASE},
        increment=["attempts"],
    )


def _sender_domain() -> str:
    return settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip("> ") or "localhost"


def _build(message: EmailMessage, unsubscribe: str) -> EmailMultiAlternatives:
    domain = _sender_domain()
    email = EmailMultiAlternatives(
        subject=message.subject,
        body=message.text_body,
        from_email=message.from_email,
        to=[message.to_email],
        reply_to=[message.reply_to] if message.reply_to else None,
        headers={"Message-ID": make_msgid(idstring=f"loopsync.{message.id}", domain=domain)},
    )
    if unsubscribe:
        email.extra_headers["List-Unsubscribe"] = f"<{unsubscribe}>"
        email.extra_headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    email.attach_alternative(message.html_body, "text/html")
    return email


class NotSent(Exception):
    """Connecting failed before any of the message was sent: safe to try again."""


PERMANENT, TEMPORARY, UNKNOWN = "permanent", "temporary", "unknown"


def _outcome(exc: Exception) -> str:
    """What a failed send means. The provider answered with a refusal: permanent (5xx, rejected
    recipient) or temporary (4xx, could not connect). No answer (a timeout or a dropped connection
    after the message went out): unknown, and an unknown send is never repeated."""
    from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused

    if isinstance(exc, NotSent):
        return TEMPORARY
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return PERMANENT if all(code >= 500 for code, _ in exc.recipients.values()) else TEMPORARY
    if isinstance(exc, smtplib.SMTPResponseException):
        return PERMANENT if exc.smtp_code >= 500 else TEMPORARY
    if isinstance(exc, AnymailRecipientsRefused):
        return PERMANENT
    if isinstance(exc, AnymailAPIError):
        status = getattr(exc, "status_code", None)
        if status is None:
            return UNKNOWN
        return TEMPORARY if status == 429 or status >= 500 else PERMANENT
    if isinstance(exc, (ValueError, TypeError)):  # an address or header the message cannot carry
        return PERMANENT
    return UNKNOWN


def emails_reserve(*, limit: int = BATCH_SIZE) -> list[EmailMessage]:
    """Reserve up to `limit` due queued messages for this worker, in one statement (rows other workers
    are reserving are skipped). They stay `queued` under a short lease: if this worker dies, whatever it
    had not started is due again when the lease ends. Each is claimed for sending only right before
    its own send."""
    now = timezone.now()
    due = EmailMessage.objects.filter(status=EmailMessage.Status.QUEUED, next_attempt_at__lte=now)
    claimed = work.claim(due, order_by=["id"], limit=limit, values={"next_attempt_at": now + RESERVE_LEASE})
    return list(EmailMessage.objects.select_related("contact").filter(id__in=[m.id for m in claimed]).order_by("id"))


def emails_drain(*, batch_size: int = BATCH_SIZE, budget_seconds: float = DRAIN_BUDGET_SECONDS) -> int:
    """Send queued emails batch by batch over one connection. A temporary failure (the provider is
    down) puts the rest of the batch off with a backoff and stops: the sweep wakes the drain later."""

    def send(messages: list[EmailMessage]) -> bool:
        for index, message in enumerate(messages):
            if not email_claim(message_id=message.id):
                continue  # sent or skipped meanwhile
            message.attempts += 1
            try:
                _send_claimed(message)
            except TemporarySendError:
                rest = [m.id for m in messages[index + 1 :]]
                EmailMessage.objects.filter(id__in=rest, status=EmailMessage.Status.QUEUED).update(
                    next_attempt_at=timezone.now() + SEND_RETRY
                )
                return False
        return True

    def process(messages: list[EmailMessage]) -> bool:
        try:
            return send(messages)
        except SoftTimeLimitExceeded:
            # The task's time limit: what this worker reserved and has not sent is due again now, for
            # the next drain, rather than when its reservation runs out.
            EmailMessage.objects.filter(id__in=[m.id for m in messages], status=EmailMessage.Status.QUEUED).update(
                next_attempt_at=timezone.now()
            )
            raise

    return work.drain(
        claim=lambda limit: emails_reserve(limit=limit),
        process=process,
        wake=partial(work.wake, work.DRAIN_EMAILS),
        batch_size=batch_size,
        budget_seconds=budget_seconds,
    )


def send_retry_delay(message: EmailMessage) -> timedelta:
    """Exponential backoff by attempt for temporary failures: 1, 2, 4 … minutes, capped at an hour."""
    return min(SEND_RETRY * 2 ** max(message.attempts - 1, 0), timedelta(hours=1))


def _unclaim(message_id: int) -> None:
    """Stopped before anything reached the provider: the message goes back to `queued`, due now, and the
    claim does not count as an attempt."""
    EmailMessage.objects.filter(id=message_id, status=EmailMessage.Status.SENDING).update(
        status=EmailMessage.Status.QUEUED, attempts=F("attempts") - 1, next_attempt_at=timezone.now()
    )


def _send_claimed(message: EmailMessage) -> EmailMessage:
    """Send a claimed message. Only an interruption inside the provider's send leaves its outcome
    unknown (failed, never sent twice); the task's time limit before it puts the message back."""
    try:
        email = _prepare_claimed(message)
    except SoftTimeLimitExceeded:
        _unclaim(message.id)
        raise
    if email is None:
        return message
    return _deliver_claimed(message, email)


def _prepare_claimed(message: EmailMessage) -> EmailMultiAlternatives | None:
    """The email to send, or None when the message is skipped instead (recorded here)."""
    message_id = message.id
    # A loop's email (it has a run); a transactional one always goes, even once its template is deleted.
    marketing = message.run_id is not None
    if marketing and message.contact is not None and not message.contact.subscribed:
        EmailMessage.objects.filter(id=message_id).update(
            status=EmailMessage.Status.SKIPPED, error="The contact unsubscribed before sending.", next_attempt_at=None
        )
        return None
    contact = message.contact
    left_the_team = (  # a test contact's email, queued for a member who may have left the team since
        marketing
        and contact is not None
        and not contact.livemode
        and not is_member_address(team_id=contact.team_id, email=contact.email)
    )
    if left_the_team:
        EmailMessage.objects.filter(id=message_id).update(
            status=EmailMessage.Status.SKIPPED, error=TEST_MODE_SKIPPED, next_attempt_at=None
        )
        return None
    return _build(message, unsubscribe_url(message.contact) if marketing and message.contact else "")


def _deliver_claimed(message: EmailMessage, email: EmailMultiAlternatives) -> EmailMessage:
    message_id = message.id
    try:
        _deliver(email)  # outside any transaction: no rollback can unsend
    except NotSent as exc:
        if isinstance(exc.__cause__, SoftTimeLimitExceeded):  # while connecting: nothing was sent
            _unclaim(message_id)
            raise exc.__cause__ from None
        return _send_failed(message, exc)
    except SoftTimeLimitExceeded:
        # Stopped by the task's time limit mid-send: whether the provider has it is unknown, so, as after
        # a timeout, it is not sent again. Raised on: the task must end, not carry on past its limit.
        EmailMessage.objects.filter(id=message_id, status=EmailMessage.Status.SENDING).update(
            status=EmailMessage.Status.FAILED, error=INTERRUPTED_SEND, next_attempt_at=None
        )
        raise
    except Exception as exc:
        return _send_failed(message, exc)
    provider_id = getattr(getattr(email, "anymail_status", None), "message_id", None)
    if provider_id is None:  # SMTP and console: the Message-ID we set
        provider_id = email.extra_headers["Message-ID"]
    try:
        _mark_sent(message_id, str(provider_id)[:255])
    except SoftTimeLimitExceeded:
        _mark_sent(message_id, str(provider_id)[:255])  # the limit's signal comes once: record the send, then end
        raise
    return message


def _mark_sent(message_id: int, provider_id: str) -> None:
    work.update_row(
        EmailMessage,
        message_id,
        where={},
        values={
            "status": EmailMessage.Status.SENT,
            "sent_at": timezone.now(),
            "provider_message_id": provider_id,
            "error": "",
            "next_attempt_at": None,
        },
    )


def _send_failed(message: EmailMessage, exc: Exception) -> EmailMessage:
    message_id = message.id
    error = f"{type(exc.__cause__ or exc).__name__}: {exc.__cause__ or exc}"[:1800]
    outcome = _outcome(exc)
    if outcome != TEMPORARY or message.attempts >= MAX_SEND_ATTEMPTS:
        if outcome == UNKNOWN:
            error = "No answer from the provider after sending; not retried, so it is never sent twice. " + error
        EmailMessage.objects.filter(id=message_id, status=EmailMessage.Status.SENDING).update(
            status=EmailMessage.Status.FAILED, error=error, next_attempt_at=None
        )
        logger.warning("Email %s failed: %s", message_id, error)
        return message
    EmailMessage.objects.filter(id=message_id, status=EmailMessage.Status.SENDING).update(
        status=EmailMessage.Status.QUEUED, error=error, next_attempt_at=timezone.now() + send_retry_delay(message)
    )
    raise TemporarySendError(error) from exc


_local = threading.local()


def _connection():
    """One open connection per worker thread, reused across messages (a new SMTP session per email
    costs more than the email). Settings changes (tests) open a new one."""
    key = (
        settings.EMAIL_BACKEND,
        getattr(settings, "EMAIL_HOST", ""),
        getattr(settings, "EMAIL_PORT", 0),
        str(getattr(settings, "ANYMAIL", "")),  # a provider's API address and keys
    )
    if getattr(_local, "key", None) != key:
        _connection_close()
        _local.connection = get_connection()
        _local.key = key
    return _local.connection


def _connection_close() -> None:
    connection = getattr(_local, "connection", None)
    _local.connection = _local.key = None
    if connection is not None:
        with contextlib.suppress(Exception):  # closing a broken connection may fail; it is dropped anyway
            connection.close()


def _ready_connection():
    """An open connection, checked alive if it was reused. Failing here sent nothing (NotSent)."""
    connection = _connection()
    try:
        idle = time.monotonic() - getattr(_local, "last_used", 0.0)
        reused = connection.open() is False and getattr(connection, "connection", None) is not None
        if reused and idle > IDLE_CHECK_AFTER_SECONDS:
            try:
                connection.connection.noop()  # the server may have closed it while it was idle
            except (smtplib.SMTPException, OSError):
                _connection_close()
                connection = _connection()
                connection.open()
    except Exception as exc:
        _connection_close()
        raise NotSent(f"could not connect: {exc}") from exc
    return connection


def _deliver(email: EmailMultiAlternatives) -> None:
    connection = _ready_connection()
    try:
        connection.send_messages([email])  # exactly once: what fails from here on is not repeated blindly
    except Exception:
        _connection_close()
        raise
    finally:
        _local.last_used = time.monotonic()


def emails_sweep() -> dict[str, int]:
    """Queued messages nobody sent (lost wake-up): enqueue again. Stale `sending` claims: the worker
    died mid-send, and whether the provider took it is unknown, so mark failed rather than risk two."""
    now = timezone.now()
    stale = EmailMessage.objects.filter(status=EmailMessage.Status.SENDING, next_attempt_at__lte=now).update(
        status=EmailMessage.Status.FAILED,
        error="The worker stopped while sending; not retried, so the contact never gets it twice.",
        next_attempt_at=None,
    )
    due = EmailMessage.objects.filter(status=EmailMessage.Status.QUEUED, next_attempt_at__lte=now).count()
    if due:
        work.wake(work.DRAIN_EMAILS)
    return {"requeued": due, "failed_stale": stale}


def email_send_test(*, step: LoopStep, context: dict, to: str) -> str:
    """Send `step` as it stands (saved or not), rendered with `context`, to `to` (the editor's user),
    now, with "[Test]" before the subject. Not recorded as a contact's email; its unsubscribe link
    unsubscribes nobody. Returns the Message-ID; raises what the provider raised."""
    dummy_link = absolute_url(reverse("loops:unsubscribe", kwargs={"token": TEST_EMAIL_LINK}))
    rendered = email_render(
        subject=step.subject,
        preview_text=step.preview_text,
        body=step.body,
        context={**context, "unsubscribe_url": dummy_link},
    )
    message = EmailMessage(
        id=0,
        to_email=to,
        from_email=sender_address(step),
        reply_to=step.reply_to,
        subject=f"[Test] {rendered.subject}",
        html_body=rendered.html,
        text_body=rendered.text,
    )
    email = _build(message, dummy_link)
    email.extra_headers["Message-ID"] = make_msgid(idstring="loopsync.test", domain=_sender_domain())
    email.connection = get_connection(fail_silently=False)
    email.send()
    return email.extra_headers["Message-ID"]
