"""Queueing email: a loop step's message for a run, or a transactional one, rendered when queued and recorded
whether it will be sent or not (skipped, failed) so that the team's log shows every email. `sending` sends them."""

import logging
from email.utils import formataddr

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import Membership
from accounts.services.senders import sender_email_allowed
from contacts.models import Contact
from contacts.selectors import contact_find
from contacts.services import contact_upsert
from loopsync import work

from ..models import EmailMessage, LoopRun, LoopStep
from ..rendering import SUBJECT_MAX, RenderError, contact_context, email_render, event_context
from ..tracking import html_tracked
from .unsubscribing import unsubscribe_url

logger = logging.getLogger(__name__)

# --- a loop step's email -------------------------------------------------------------------------


def email_queue(*, run: LoopRun, step: LoopStep) -> EmailMessage:
    """The message for this run's step, rendered now. The caller wakes the sender after its commit
    (a wake-up of DRAIN_EMAILS, once for a whole batch of runs)."""
    contact = run.contact
    url = unsubscribe_url(contact)
    rendered = email_render(
        subject=step.subject,
        preview_text=step.preview_text,
        body=step.body,
        context={"contact": contact_context(contact), "event": event_context(run.event), "unsubscribe_url": url},
    )
    from_address = sender_address(step)
    skipped = _not_sent_because(contact, test_event=run.event is not None and not run.event.livemode)
    html, token = html_tracked(rendered.html, track=step.tracking and run.team.email_tracking and not skipped)
    # Inside the run's savepoint: a second message for this (run, step) fails the unique constraint
    # and that savepoint, so the step never sends twice (a run is advanced by one worker at a time).
    message = EmailMessage.objects.create(
        team_id=run.team_id,
        contact=contact,
        run=run,
        step=step,
        to_email=contact.email,
        from_email=from_address,
        reply_to=step.reply_to,
        subject=rendered.subject,
        preview_text=rendered.preview_text,
        html_body=html,
        text_body=rendered.text,
        tracking_token=token,
        status=EmailMessage.Status.SKIPPED if skipped else EmailMessage.Status.QUEUED,
        error=skipped,
        next_attempt_at=None if skipped else timezone.now(),
    )
    return message


TEST_MODE_SKIPPED = (
    "Test mode: this contact came from a Stripe test-mode event, and test-mode email goes only to the "
    "addresses of the team's members."
)


def _not_sent_because(contact: Contact, *, test_event: bool = False) -> str:
    """Why a loop's email to this contact is recorded as skipped instead of sent ("" when it is sent). A test
    contact, or a run a test-mode event started, emails only the team's members."""
    if not contact.subscribed:
        return "The contact is unsubscribed."
    test_mode = test_event or not contact.livemode
    if test_mode and not is_member_address(team_id=contact.team_id, email=contact.email):
        return TEST_MODE_SKIPPED
    return ""


def is_member_address(*, team_id: int, email: str) -> bool:
    return Membership.objects.filter(team_id=team_id, user__email__iexact=email.strip()).exists()


def sender_address(step: LoopStep) -> str:
    """The From header for a step or a transactional email. A From whose domain is no longer allowed
    (its domain was deleted or ALLOWED_SENDER_DOMAINS changed since it was saved) falls back to the
    default sender: never send as a domain the team has not verified."""
    if step.from_email and not sender_email_allowed(team_id=step.team_id, email=step.from_email):
        logger.warning("Team %s: From domain no longer allowed, sending as the default sender.", step.team_id)
        return settings.DEFAULT_FROM_EMAIL
    if step.from_name and step.from_email:
        return formataddr((step.from_name, step.from_email))
    return step.from_email or settings.DEFAULT_FROM_EMAIL


# --- transactional email -------------------------------------------------------------------------


def transactional_send(*, transactional, to_email: str, data: dict, add_to_audience: bool = False) -> EmailMessage:
    """The API's `transactional`: queue `transactional` to `to_email`, linked to its contact when there is
    one (created first when `add_to_audience`). Raises ValidationError when the email cannot be rendered
    with this data (a limit): the failed email is recorded first, so the team's log shows it too."""
    with transaction.atomic():
        contact = contact_find(team=transactional.team, email=to_email)
        if contact is None and add_to_audience:
            contact, _ = contact_upsert(team=transactional.team, email=to_email)
        message = transactional_queue(transactional=transactional, to_email=to_email, contact=contact, data=data)
    if message.status == EmailMessage.Status.FAILED:
        raise ValidationError({"dataVariables": message.error})
    return message


def transactional_queue(*, transactional, to_email: str, contact: Contact | None, data: dict) -> EmailMessage:
    """Queue one transactional email (sent whether or not the address is subscribed, with no
    unsubscribe link), recorded like any other send. Raises ValidationError for a missing variable."""
    missing = [name for name in transactional.required_variables if data.get(name) in (None, "")]
    if missing:
        raise ValidationError({f"dataVariables.{name}": "This variable is required." for name in missing})
    context = {
        "contact": contact_context(contact) if contact else {"email": to_email},
        "data": data,
        "unsubscribe_url": "",
    }
    recorded = {
        "team_id": transactional.team_id,
        "contact": contact,
        "transactional": transactional,
        "to_email": to_email,
        "from_email": sender_address(transactional),
        "reply_to": transactional.reply_to,
    }
    try:
        rendered = email_render(
            subject=transactional.subject,
            preview_text=transactional.preview_text,
            body=transactional.body,
            context=context,
        )
    except RenderError as exc:  # these values took the template over a limit: recorded, never sent
        return EmailMessage.objects.create(
            **recorded, subject=transactional.subject[:SUBJECT_MAX], status=EmailMessage.Status.FAILED, error=str(exc)
        )
    html, token = html_tracked(rendered.html, track=transactional.tracking and transactional.team.email_tracking)
    message = EmailMessage.objects.create(
        **recorded,
        subject=rendered.subject,
        preview_text=rendered.preview_text,
        html_body=html,
        tracking_token=token,
        text_body=rendered.text,
        status=EmailMessage.Status.QUEUED,
        next_attempt_at=timezone.now(),
    )
    work.wake_on_commit(work.DRAIN_EMAILS)
    return message
