"""Import and catch-up: a Stripe account's customers and events, read with the endpoint's restricted key.

- Import pages through customers, then subscriptions, then paid invoices, and syncs contacts and their billing
  state (events only when asked); it ends by replaying the deliveries ignored as "customer unknown".
- Catch-up lists the events created since the newest delivery (or a given time) and stores each through the
  webhook's own path (`receiving.delivery_receive_fetched`): deduplicated by event id, so nothing doubles.

A sync saves where it is after every page. The Celery task runs it for a time budget and hands over to a new
task; a worker that dies leaves it resumable (the sweep, the Resume button, or the command pick it up).
"""

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Team
from contacts.billing import ENDED, contact_billing_apply
from contacts.models import Contact
from contacts.services import contact_sync
from loopsync import jobs, work

from .. import stripe_billing
from ..models import Delivery, Endpoint, EventSetting, IgnoredReason, StripeSync
from ..selectors import catchup_default_since
from ..stripe_api import StripeRefused, StripeUnavailable, customers_count, pages
from ..stripe_events import SUPPORTED_EVENTS
from ..stripe_readers import ref, text
from .processing import TEMPORARY_ERRORS, delivery_replay, events_fire
from .receiving import WebhookRejected, delivery_receive_fetched, email_valid

logger = logging.getLogger(__name__)

SOURCE_IMPORT = "Stripe import"
PHASES: dict[str, list[str]] = {
    StripeSync.Kind.IMPORT: ["customers", "subscriptions", "invoices", "replays"],
    StripeSync.Kind.CATCHUP: ["events"],
}
STALE_AFTER = StripeSync.STALE_AFTER
TASK_BUDGET_SECONDS = jobs.TASK_BUDGET_SECONDS
# Claimed, saved, swept and handed over as every long job is (loopsync.jobs)
SYNCS = jobs.Jobs(StripeSync, task=work.RUN_STRIPE_SYNC, stale_after=STALE_AFTER, label="Stripe sync")

Progress = Callable[[StripeSync], None]


class SyncRunning(ValidationError):
    """A worker is running this kind of sync for the endpoint right now."""


def sync_start(
    *, endpoint: Endpoint, kind: str, fire_events: bool = False, since=None, user=None, in_celery: bool = True
) -> StripeSync:
    """Start an import or a catch-up, or resume the one of that kind that stopped before it finished (then the
    options given are not applied: `sync.resumed` is true). The work runs in Celery once this transaction
    commits (`in_celery`), or where the caller runs `sync_run` (the command). Raises SyncRunning while a
    worker is at it, ValidationError when it cannot start."""
    if not endpoint.api_key:
        raise ValidationError("Save a Stripe restricted key first: import and catch-up read Stripe with it.")
    if kind == StripeSync.Kind.CATCHUP and not endpoint.enabled:
        raise ValidationError("This endpoint is disabled: enable it to catch up its events.")
    if since is not None and since < timezone.now() - timedelta(days=settings.STRIPE_CATCHUP_DAYS):
        raise ValidationError(f"Stripe keeps events for {settings.STRIPE_CATCHUP_DAYS} days: choose a later time.")
    if since is not None and since > timezone.now():
        raise ValidationError("That time is in the future: no event was created since then yet.")
    unfinished = Q(status__in=[StripeSync.Status.QUEUED, StripeSync.Status.RUNNING])
    sync = StripeSync.objects.filter(unfinished, endpoint=endpoint, kind=kind).first()
    if sync is not None and sync.status == StripeSync.Status.RUNNING and not sync.resumable:
        raise SyncRunning(f"This {sync.get_kind_display().lower()} is running already: its progress is on the page.")
    resumed = sync is not None
    if sync is None:
        try:
            with transaction.atomic():
                sync = StripeSync.objects.create(
                    team_id=endpoint.team_id,
                    endpoint=endpoint,
                    kind=kind,
                    fire_events=fire_events,
                    since=since,
                    created_by=user,
                )
        except IntegrityError:  # started at the same moment by someone else: that one is it
            sync, resumed = StripeSync.objects.get(unfinished, endpoint=endpoint, kind=kind), True
    sync.resumed = resumed
    if in_celery:
        work.enqueue_on_commit(work.RUN_STRIPE_SYNC, sync.id)  # down: the sweep starts it when it is back
    return sync


def syncs_sweep() -> int:
    """Start syncs whose task was lost: queued ones nobody took, running ones whose worker died."""
    return SYNCS.sweep()


_Lost = jobs.Lost  # another worker took this sync over (ours was given up on): stop without saving
_claim = SYNCS.claim


def sync_run(*, sync_id: int, budget_seconds: float | None = None, progress: Progress | None = None) -> str:
    """Run a sync from where it is. Returns its status: "queued" when the budget ran out first or Stripe could
    not answer (the caller, or the sweep, carries on from its last page), "done", "failed", or "" when
    another worker holds it. Raises StripeUnavailable after recording it, for the caller to say."""
    claim = _claim(sync_id)
    if claim is None:
        return ""
    sync = StripeSync.objects.select_related("endpoint").get(id=sync_id)
    sync.claim = claim
    deadline = jobs.deadline(budget_seconds)
    phases = PHASES[sync.kind]
    try:
        if sync.kind == StripeSync.Kind.IMPORT and sync.total is None and not sync.phase:
            sync.total = customers_count(api_key=sync.endpoint.api_key)
        for phase in phases[phases.index(sync.phase) if sync.phase in phases else 0 :]:
            if sync.phase != phase:
                sync.phase, sync.cursor = phase, ""
            if not _phase_run(sync, deadline, progress):
                return _save(sync, status=StripeSync.Status.QUEUED)
    except _Lost:
        return ""
    except StripeRefused as exc:
        return _save(sync, status=StripeSync.Status.FAILED, error=str(exc))
    except (StripeUnavailable, *TEMPORARY_ERRORS) as exc:  # waits for the sweep (or Resume) to go on from here
        _save(sync, status=StripeSync.Status.QUEUED, error=f"{exc}. It goes on from where it stopped.")
        raise
    except Exception as exc:  # a fault of ours: say so rather than loop on it
        logger.exception("Stripe sync %s stopped", sync.id)
        return _save(sync, status=StripeSync.Status.FAILED, error=f"Stopped on an error: {type(exc).__name__}: {exc}")
    return _save(sync, status=StripeSync.Status.DONE)


def _save(sync: StripeSync, *, status: str, error: str = "") -> str:
    """Where the sync is, and its status: after every page (running), and at the end of a turn."""
    SYNCS.save(
        sync.id,
        sync.claim,
        status=status,
        error=error,
        phase=sync.phase,
        cursor=sync.cursor,
        done=sync.done,
        total=sync.total,
        counts=sync.counts,
    )
    sync.status = status
    return status


def _phase_run(sync: StripeSync, deadline, progress: Progress | None) -> bool:
    """Run one phase to its end (True) or until the deadline (False)."""
    if sync.phase == "replays":
        _replays(sync)
        return True
    endpoint = sync.endpoint
    resource, params, handle = {
        "customers": ("customers", {}, _customers),
        "subscriptions": ("subscriptions", {"status": "all"}, _subscriptions),
        "invoices": ("invoices", {"status": "paid"}, _invoices),
        "events": ("events", {}, _events),
    }[sync.phase]
    if sync.phase == "events":  # oldest first, as they happened: from just before the catch-up's start
        if not sync.cursor:
            sync.cursor = _events_anchor(sync)
            if not sync.cursor:
                return True  # Stripe has no event since then
        listing = pages(api_key=endpoint.api_key, resource=resource, params=params, ending_before=sync.cursor)
    else:
        listing = pages(api_key=endpoint.api_key, resource=resource, params=params, starting_after=sync.cursor)
    for fetched_at, page in listing:
        handle(sync, page, fetched_at)
        sync.cursor = page[-1]["id"]  # the last handed over: the oldest so far, or for events the newest
        _save(sync, status=StripeSync.Status.RUNNING)
        if progress:
            progress(sync)
        if jobs.past(deadline):
            return False
    return True


def _count(sync: StripeSync, key: str, n: int = 1) -> None:
    sync.counts[key] = sync.counts.get(key, 0) + n


def _triggers(sync: StripeSync, event_type: str) -> tuple[str, str]:
    if not sync.fire_events:
        return "", ""
    row = EventSetting.objects.filter(endpoint=sync.endpoint, event_type=event_type, enabled=True).values_list(
        "trigger_event_name", "additional_event_name"
    )
    return row.first() or ("", "")


def _fire(sync: StripeSync, contact: Contact, names: tuple[str, str], object_id: str, properties: dict) -> None:
    """An imported object fires the endpoint's events once, however often it is imported."""
    fired = events_fire(
        contact=contact, names=names, key=f"import:{object_id}", properties={**properties, "imported": True}
    )
    if fired:
        _count(sync, "events_fired", fired)


def _customers(sync: StripeSync, customers: list[dict], fetched_at: int) -> None:
    endpoint, as_of = sync.endpoint, datetime.fromtimestamp(fetched_at, tz=UTC)
    names = _triggers(sync, "customer.created")
    for customer in customers:
        sync.done += 1
        email = text(customer.get("email"))
        if not email or not email_valid(email):
            _count(sync, "no_email")
            continue
        with transaction.atomic():
            synced = contact_sync(
                team=Team(id=sync.team_id),
                livemode=endpoint.livemode,
                email=email,
                full_name=text(customer.get("name")),
                stripe_customer_id=ref(customer),
                event_created=as_of,
                source=SOURCE_IMPORT,
                new_user_group=endpoint.new_contact_user_group,
                new_list_id=endpoint.new_contact_list_id,
                billing=_present(stripe_billing.customer_update(customer)),
            )
            if synced.created:  # a contact LoopSync knew has had its welcome already, from the webhook
                _fire(sync, synced.contact, names, ref(customer), {"stripe_customer_id": ref(customer)})
        _count(sync, "created" if synced.created else "updated")


def _present(update):
    return (update,) if update else ()


def _contacts_by_customer(sync: StripeSync, objects: list[dict]) -> dict[str, Contact]:
    ids = {ref(obj.get("customer")) for obj in objects} - {""}
    contacts = Contact.objects.filter(
        team_id=sync.team_id, livemode=sync.endpoint.livemode, stripe_customer_id__in=ids
    ).only("id", "stripe_customer_id")
    return {contact.stripe_customer_id: contact for contact in contacts}


def _billing_apply(sync, objects: list[dict], update_of, counted: str, at: int) -> list[tuple[Contact, dict]]:
    """Apply each object's billing update to its customer's contact; the objects whose contact was found."""
    contacts, applied = _contacts_by_customer(sync, objects), []
    for obj in objects:
        update = update_of(obj)
        if update is None:
            continue
        found = contacts.get(ref(obj.get("customer")))
        if found is None:
            _count(sync, f"{counted}_without_contact")
            continue
        with transaction.atomic():
            contact = Contact.objects.select_for_update(no_key=True).get(id=found.id)
            contact_billing_apply(contact=contact, updates=[update], at=at)
            applied.append((contact, obj))
        _count(sync, counted)
    return applied


def _subscriptions(sync: StripeSync, subscriptions: list[dict], fetched_at: int) -> None:
    applied = _billing_apply(sync, subscriptions, stripe_billing.subscription_update, "subscriptions", fetched_at)
    names = _triggers(sync, "customer.subscription.created")
    if any(names):
        for contact, subscription in applied:
            if text(subscription.get("status")) not in ENDED:  # no "subscription created" for one long over
                _fire(sync, contact, names, ref(subscription), {"subscription_id": ref(subscription)})


def _invoices(sync: StripeSync, invoices: list[dict], fetched_at: int) -> None:
    def paid(invoice: dict):
        return stripe_billing.invoice_paid_update(invoice, event_created=None)

    _billing_apply(sync, invoices, paid, "paid_invoices", fetched_at)


def _replays(sync: StripeSync) -> None:
    """Deliveries ignored as "customer unknown" may know their contact now: send them through again."""
    waiting = Delivery.objects.filter(
        endpoint_id=sync.endpoint_id, status=Delivery.Status.IGNORED, ignored_reason=IgnoredReason.CUSTOMER_UNKNOWN
    ).select_related("endpoint")
    for delivery in waiting.iterator(chunk_size=500):
        with transaction.atomic():
            delivery_replay(delivery=delivery)
        _count(sync, "replayed")


def _since(sync: StripeSync):
    """The catch-up's start: the time given, else the newest event this endpoint received from Stripe, else
    the endpoint's creation; never before what Stripe still keeps."""
    if sync.since is None:
        sync.since = catchup_default_since(endpoint=sync.endpoint).at
        StripeSync.objects.filter(id=sync.id).update(since=sync.since)
    return max(sync.since, timezone.now() - timedelta(days=settings.STRIPE_CATCHUP_DAYS))


def _events_anchor(sync: StripeSync) -> str:
    """Where an oldest-first listing of the catch-up's events starts: the newest event created before its start.
    When Stripe has none (all it keeps is newer), the oldest event of the window is stored first and is it."""
    since = int(_since(sync).timestamp())
    api_key = sync.endpoint.api_key
    for _fetched_at, before in pages(api_key=api_key, resource="events", params={"created": {"lt": since}}):
        return before[0]["id"]  # newest first: the first one is the newest before the start
    oldest: list[dict] = []
    at = 0
    for fetched_at, page in pages(api_key=api_key, resource="events", params={"created": {"gte": since}}):
        oldest, at = page[-1:], fetched_at
    if oldest:
        _events(sync, oldest, at)
    return oldest[0]["id"] if oldest else ""


def _events(sync: StripeSync, events: list[dict], fetched_at: int) -> None:
    for event in events:
        sync.done += 1
        if event.get("type") not in SUPPORTED_EVENTS:
            _count(sync, "not_supported")
            continue
        try:
            with transaction.atomic():
                received = delivery_receive_fetched(endpoint_uuid=sync.endpoint.uuid, payload=event)
        except WebhookRejected as exc:
            if exc.status == 404:  # the endpoint was disabled meanwhile: nothing more can be stored
                raise StripeRefused("The endpoint was disabled during the catch-up: enable it, then resume.") from None
            _count(sync, "refused")
            logger.warning("Catch-up %s: event %s refused: %s", sync.id, event.get("id"), exc.message)
            continue
        _count(sync, received.status)  # queued, ignored or duplicate
