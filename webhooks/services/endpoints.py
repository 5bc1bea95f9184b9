"""Webhook use cases of the settings pages: set up an endpoint, its secret and event settings, and send
it a test event. Receiving is in `receiving`, processing in `processing`."""

import json

import stripe
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import Team
from contacts.models import Contact, MailingList
from contacts.services import contact_sync
from loops.services import event_name_validate

from .. import samples
from ..models import Endpoint, EventSetting
from ..stripe_api import api_key_validate
from ..stripe_events import SUPPORTED_EVENTS
from .receiving import Received, delivery_receive

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
def endpoint_settings_save(*, endpoint: Endpoint, settings: dict[str, tuple[bool, str, str]]) -> None:
    """Every type's setting at once, `{type: (enabled, trigger name, additional event name)}`; one bad value
    saves nothing."""
    unknown = set(settings) - set(SUPPORTED_EVENTS)
    if unknown:
        raise ValidationError(f"Not a supported Stripe event type: {', '.join(sorted(unknown))}.")
    cleaned = {
        event_type: (bool(on), trigger_name_validate(name), trigger_name_validate(additional))
        for event_type, (on, name, additional) in settings.items()
    }
    for event_type, (enabled, name, additional) in cleaned.items():
        EventSetting.objects.update_or_create(
            endpoint=endpoint,
            event_type=event_type,
            defaults={
                "team_id": endpoint.team_id,
                "enabled": enabled,
                "trigger_event_name": name,
                "additional_event_name": additional if additional != name else "",
            },
        )


def endpoint_options_save(
    *, endpoint: Endpoint, user_group: str, mailing_list: MailingList | None, customer_deleted: str
) -> Endpoint:
    """What new contacts from this endpoint get, and what a customer deleted in Stripe means (Loops' options)."""
    if mailing_list is not None and mailing_list.team_id != endpoint.team_id:
        raise ValidationError("That mailing list belongs to another team.")
    if customer_deleted not in Endpoint.CustomerDeleted.values:
        raise ValidationError(f"A deleted customer's contact is unsubscribed or deleted, not {customer_deleted!r}.")
    endpoint.new_contact_user_group = user_group.strip()[:120]
    endpoint.new_contact_list = mailing_list
    endpoint.customer_deleted = customer_deleted
    endpoint.save(update_fields=["new_contact_user_group", "new_contact_list", "customer_deleted", "updated_at"])
    return endpoint


def endpoint_api_key_save(*, endpoint: Endpoint, api_key: str) -> Endpoint:
    """Check a restricted key with one call to Stripe, then keep it. Raises ValidationError, saving nothing."""
    endpoint.api_key = api_key_validate(api_key=api_key, livemode=endpoint.livemode)
    endpoint.save(update_fields=["api_key", "updated_at"])
    return endpoint


def endpoint_api_key_remove(*, endpoint: Endpoint) -> Endpoint:
    endpoint.api_key = ""
    endpoint.save(update_fields=["api_key", "updated_at"])
    return endpoint


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
    spec = SUPPORTED_EVENTS[event_type]
    if not spec.email(sample) or event_type == "customer.deleted":
        # A subscription or a quote names only its customer: the test contact must carry it, as a customer
        # made in Stripe before its subscription would have made it. A deletion needs one to delete.
        contact_sync(
            team=endpoint.team,
            livemode=False,
            email=email,
            full_name=name.strip(),
            stripe_customer_id=spec.customer(sample),
        )
    body = json.dumps(sample)
    signature = stripe.WebhookSignature.generate_signature_header(body, endpoint.signing_secret)
    return delivery_receive(endpoint_uuid=endpoint.uuid, body=body.encode(), signature=signature, sample=True)
