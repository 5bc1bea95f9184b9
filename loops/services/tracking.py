"""What happens to an email once sent: its opens and clicks (loops.tracking's pixel and redirects), and what the
provider reports through django-anymail's tracking webhooks. A hard bounce or a spam complaint suppresses the
contact (contacts' `UnsubscribedBy.BOUNCE` / `COMPLAINT`), with the provider's reason."""

import logging
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from contacts.models import Contact, UnsubscribedBy
from contacts.services import contact_set_subscribed

from ..models import EmailActivity, EmailMessage

logger = logging.getLogger(__name__)

# Opens and clicks kept as rows per email (the totals on the email go on counting): a forwarded email opened
# a million times costs a million cheap updates of one row, never a million rows.
ACTIVITY_PER_EMAIL = 100

Kind = EmailActivity.Kind


def _tracked(token: str) -> dict[str, Any] | None:
    row = EmailMessage.objects.filter(tracking_token=token).values("id", "team_id", "contact_id", "opens", "clicks")
    found = row.first()
    return dict(found) if found is not None else None


def _activity_add(message: dict[str, Any], kind: str, *, url: str = "", at: datetime) -> None:
    if message["opens"] + message["clicks"] < ACTIVITY_PER_EMAIL:
        EmailActivity.objects.create(
            team_id=message["team_id"],
            message_id=message["id"],
            contact_id=message["contact_id"],
            kind=kind,
            url=url,
            created_at=at,
        )


def email_open_record(*, token: str) -> bool:
    """The pixel of the email with this token was loaded. False when no email has it."""
    message = _tracked(token)
    if message is None:
        return False
    now = timezone.now()
    EmailMessage.objects.filter(id=message["id"]).update(
        opens=F("opens") + 1, opened_at=Coalesce(F("opened_at"), Value(now))
    )
    _activity_add(message, Kind.OPEN, at=now)
    return True


def email_click_record(*, token: str, url: str) -> bool:
    """A link of the email with this token was followed (its signature checked by the caller). A click is an
    open too, when the pixel was not loaded (images off): the email's first open is set, no open is counted."""
    message = _tracked(token)
    if message is None:
        return False
    now = timezone.now()
    EmailMessage.objects.filter(id=message["id"]).update(
        clicks=F("clicks") + 1,
        clicked_at=Coalesce(F("clicked_at"), Value(now)),
        opened_at=Coalesce(F("opened_at"), Value(now)),
    )
    _activity_add(message, Kind.CLICK, url=url, at=now)
    return True


# --- what the provider reports (anymail.signals.tracking) -----------------------------------------------

# anymail's normalized event types → ours. Opens and clicks the provider tracks are left out: LoopSync tracks
# its own (and a team that turned tracking off must not see the provider's instead); so are queued and sent.
PROVIDER_KINDS = {
    "delivered": Kind.DELIVERED,
    "deferred": Kind.DEFERRED,
    "bounced": Kind.BOUNCE,
    "rejected": Kind.REJECTED,
    "failed": Kind.REJECTED,
    "complained": Kind.COMPLAINT,
    "unsubscribed": Kind.UNSUBSCRIBED,
}
# A rejection for these reasons means the address does not work: suppressed as a bounce. A "bounced" for another
# reason (a virus found, a policy or spam block, a time-out) says nothing against the address: recorded only.
DEAD_ADDRESS_REASONS = {"bounced", "invalid"}

# SparkPost's bounce classes for a temporary failure (support.sparkpost.com: bounce classification codes)
SPARKPOST_SOFT_CLASSES = {"20", "21", "22", "23", "24", "70"}


def _raw(event) -> dict[str, Any]:
    return event.esp_event if isinstance(event.esp_event, dict) else {}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _soft_bounce(event, esp_name: str) -> bool:
    """anymail reports many providers' soft bounces as "bounced" too, telling them apart only in the provider's own
    payload (anymail.webhooks.<provider>). Those are recorded as deferred, never suppressed. Mailgun, Postal,
    Mailtrap and Unisender Go soft bounces already arrive as "deferred"."""
    raw, esp = _raw(event), esp_name.lower()
    if esp == "postmark":
        return raw.get("Type") == "SoftBounce"
    if esp == "amazon ses":
        return _dict(raw.get("bounce")).get("bounceType") == "Transient"
    if esp in ("brevo", "sendinblue", "mandrill"):
        return raw.get("event") == "soft_bounce"
    if esp == "mailersend":
        return _dict(raw.get("data")).get("type") == "soft_bounced"
    if esp == "mailjet":
        return raw.get("hard_bounce") is False
    if esp == "sendgrid":
        return raw.get("type") == "blocked"  # SendGrid's bounce event: "bounce", or "blocked" (temporary)
    if esp == "resend":
        return _dict(_dict(raw.get("data")).get("bounce")).get("type") == "Transient"
    if esp == "sparkpost":
        bounce = _dict(_dict(raw.get("msys")).get("message_event"))
        return str(bounce.get("bounce_class", "")) in SPARKPOST_SOFT_CLASSES
    return False


def _kind(event, esp_name: str) -> str | None:
    """Ours for anymail's event type. A "bounced" is a hard bounce (`Kind.BOUNCE`, which suppresses) only when the
    provider does not call it soft and gives no reason other than a dead address."""
    kind = PROVIDER_KINDS.get(str(event.event_type))
    if kind == Kind.REJECTED and str(event.reject_reason or "") in DEAD_ADDRESS_REASONS:
        return Kind.BOUNCE  # refused for an address that does not work: a hard bounce, told another way
    if kind != Kind.BOUNCE:
        return kind
    if _soft_bounce(event, esp_name):
        return Kind.DEFERRED
    if event.reject_reason is not None and str(event.reject_reason) not in DEAD_ADDRESS_REASONS:
        return Kind.REJECTED  # Postmark's VirusNotification, SparkPost's policy and spam blocks…
    return Kind.BOUNCE


def _message_for(provider_id: str) -> EmailMessage | None:
    """The email the provider's id names: the id its API returned, or (SMTP) the Message-ID we set, which some
    providers report without its angle brackets."""
    bare = provider_id.strip().strip("<>")
    if not bare:
        return None
    candidates = {provider_id, bare, f"<{bare}>"}
    return (
        EmailMessage.objects.filter(provider_message_id__in=candidates)
        .select_related("contact")
        .order_by("-id")
        .first()
    )


def provider_event_record(*, event, esp_name: str) -> str:
    """Record one normalized anymail tracking event on the email it is about; suppress its contact for a hard
    bounce (or a rejection of a dead address) and a complaint. Returns what was done, for the log: "recorded",
    "suppressed", "duplicate", "ignored: …". A provider's retry of the same event is recorded once."""
    kind = _kind(event, esp_name)
    if kind is None:
        return f"ignored: {event.event_type} is not recorded"
    message = _message_for(str(event.message_id or ""))
    if message is None:
        return "ignored: no email has this message id"
    at = event.timestamp or timezone.now()
    if timezone.is_naive(at):  # a provider's time without its zone: UTC, as they all send it
        at = timezone.make_aware(at, UTC)
    # The provider's id of its event, or (for those that send none: Mandrill, Mailjet, Brevo, Postmark's deliveries)
    # what it is and when: a retry of the same event is the same key either way.
    event_key = str(event.event_id or "") or (f"{kind}@{event.timestamp.isoformat()}" if event.timestamp else "")
    detail = " ".join(str(event.description or event.mta_response or "").split())[:400]
    suppress = _suppression(kind)
    with transaction.atomic():
        try:
            with transaction.atomic():
                EmailActivity.objects.create(
                    team_id=message.team_id,
                    message=message,
                    contact_id=message.contact_id,
                    kind=kind,
                    detail=detail,
                    provider_event_id=event_key[:255],
                    created_at=at,
                )
        except IntegrityError:
            return "duplicate"
        if kind == Kind.COMPLAINT:
            EmailMessage.objects.filter(id=message.id, complained_at__isnull=True).update(complained_at=at)
        elif suppress:
            EmailMessage.objects.filter(id=message.id, bounced_at__isnull=True).update(bounced_at=at)
        if suppress and message.contact is not None:
            reason = f"{esp_name}: {detail}" if detail else esp_name
            _suppress(message.contact, by=suppress, reason=reason)
            return "suppressed"
    return "recorded"


def _suppression(kind: str) -> str:
    if kind == Kind.COMPLAINT:
        return UnsubscribedBy.COMPLAINT
    if kind == Kind.BOUNCE:  # a hard bounce, or a rejection of a dead address (`_kind`)
        return UnsubscribedBy.BOUNCE
    return ""


def _suppress(contact: Contact, *, by: str, reason: str) -> None:
    contact_set_subscribed(contact=contact, subscribed=False, by=by, reason=reason)
    logger.info("Contact %s of team %s suppressed: %s.", contact.pk, contact.team_id, by)
