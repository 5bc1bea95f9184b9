"""Webhook use cases of the settings pages: set up an endpoint, its secret and event settings, and send
it a test event. Receiving is in `receiving`, processing in `processing`."""

import json

import stripe
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import Team
from contacts.models import Contact
from loops.services import event_name_validate

from . import samples
from .models import Endpoint, EventSetting
from .receiving import Received, delivery_receive
from .stripe_events import SUPPORTED_EVENTS

# --- endpoints -----------------------------------------------------------------------------------


def secret_validate(secret: str) -> str:
    secret = secret.strip()
    if not secret.startswith("whsec_") or len(secret) < 12 or any(c.isspace() for c in secret):
        raise ValidationError("A Stripe signing secret starts with whsec_ (Developers → Webhooks → Reveal).")
    return secret


@transaction.atomic
def endpoint_create(
    *,
    team: Team,
    secret: str = "",
    name: str = "Stripe",
    triggers: dict[str, str] | None = None,
    disabled: set[str] | frozenset[str] = frozenset(),
    tolerance: int = settings.WEBHOOK_DEFAULT_TOLERANCE_SECONDS,
    mode: str = Endpoint.Mode.LIVE,
) -> Endpoint:
    """An endpoint for Stripe's live or test mode, with one setting per supported type: all enabled
    unless `disabled`."""
    triggers = triggers or {}
    unknown = (set(triggers) | set(disabled)) - set(SUPPORTED_EVENTS)
    if unknown:
        raise ValidationError(
            f"Not a supported Stripe event type: {', '.join(sorted(unknown))}. "
            f"Supported: {', '.join(SUPPORTED_EVENTS)}."
        )
    if tolerance < 1:
        raise ValidationError("The signature tolerance must be at least one second.")
    if mode not in Endpoint.Mode.values:
        raise ValidationError(f"An endpoint's mode is live or test, not {mode!r}.")
    endpoint = Endpoint.objects.create(
        team=team,
        mode=mode,
        name=name.strip() or "Stripe",
        signing_secret=secret_validate(secret) if secret else "",
        tolerance=tolerance,
    )
    EventSetting.objects.bulk_create(
        EventSetting(
            team=team,
            endpoint=endpoint,
            event_type=event_type,
            enabled=event_type not in disabled,
            trigger_event_name=triggers.get(event_type, "").strip(),
        )
        for event_type in SUPPORTED_EVENTS
    )
    return endpoint


# --- settings pages ------------------------------------------------------------------------------


def trigger_name_validate(name: str) -> str:
    """The event a Stripe type fires; blank means "sync the contact only"."""
    return event_name_validate(name)


def endpoint_secret_save(*, endpoint: Endpoint, secret: str) -> Endpoint:
    """Replace the signing secret (Stripe shows a new one when the old one is rolled)."""
    endpoint.signing_secret = secret_validate(secret)
    endpoint.save(update_fields=["signing_secret", "updated_at"])
    return endpoint


@transaction.atomic
def endpoint_settings_save(*, endpoint: Endpoint, settings: dict[str, tuple[bool, str]]) -> None:
    """Every type's setting at once, `{type: (enabled, trigger name)}`; one bad value saves nothing."""
    unknown = set(settings) - set(SUPPORTED_EVENTS)
    if unknown:
        raise ValidationError(f"Not a supported Stripe event type: {', '.join(sorted(unknown))}.")
    cleaned = {event_type: (bool(on), trigger_name_validate(name)) for event_type, (on, name) in settings.items()}
    for event_type, (enabled, name) in cleaned.items():
        EventSetting.objects.update_or_create(
            endpoint=endpoint,
            event_type=event_type,
            defaults={"team_id": endpoint.team_id, "enabled": enabled, "trigger_event_name": name},
        )


def endpoint_set_enabled(*, endpoint: Endpoint, enabled: bool) -> Endpoint:
    """A disabled endpoint answers 404 and stores nothing; Stripe retries for a while, then gives up."""
    endpoint.enabled = enabled
    endpoint.save(update_fields=["enabled", "updated_at"])
    return endpoint


def endpoint_delete(*, endpoint: Endpoint) -> None:
    endpoint.delete()  # its settings and deliveries go with it


# --- test events ---------------------------------------------------------------------------------


def endpoint_test_send(*, endpoint: Endpoint, event_type: str, email: str, name: str = "") -> Received:
    """Sign a sample event with the endpoint's own secret and receive it exactly as one from Stripe:
    the same signature check, delivery row and processing. The sample is a test-mode event, on a live
    endpoint too, so it syncs a test contact and its loops email only the team's own members. Raises
    ValidationError when it cannot be sent, WebhookRejected when the receive path refuses it."""
    if not endpoint.enabled:
        raise ValidationError("This endpoint is disabled: enable it to send a test event.")
    if not endpoint.signing_secret:
        raise ValidationError("Save the signing secret first: test events are signed with it, as Stripe's are.")
    email = email.strip() or samples.TEST_EMAIL
    # A test contact with this email keeps its Stripe customer id: the sample names that customer, so a
    # second test never rewrites the first one's link.
    existing = (
        Contact.objects.filter(team_id=endpoint.team_id, livemode=False)
        .with_email(email)
        .exclude(stripe_customer_id="")
        .values_list("stripe_customer_id", flat=True)
        .first()
    )
    sample = samples.sample_event(event_type=event_type, email=email, name=name.strip(), customer_id=existing or "")
    body = json.dumps(sample)
    signature = stripe.WebhookSignature.generate_signature_header(body, endpoint.signing_secret)
    return delivery_receive(endpoint_uuid=endpoint.uuid, body=body.encode(), signature=signature, sample=True)
