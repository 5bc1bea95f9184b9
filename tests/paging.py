"""Lists longer than two pages, for the pagination tests (view tests and the browser test).

Each list gets rows its filter keeps (more than two pages' worth: the pages hold 50) and rows it leaves
out, interleaved in time, three rows to a timestamp: ties are where paging by time breaks, and some
timestamps carry a fraction of a second. Each function returns what the filtered list must show, in the
order it shows it, computed from the rows as stored, not from the code under test.
"""

import random
from datetime import UTC, datetime, timedelta

from accounts.models import Team
from contacts.models import Contact
from loops.models import Event, Loop, LoopRun, LoopStep
from webhooks.models import Delivery, Endpoint

KEPT = 130  # 50 + 50 + 30: the last page is a short one
LEFT_OUT = 40
BASE = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)

AUDIENCE_FILTER = {"q": "keep", "source": "Import"}
EVENTS_FILTER = {"name": "failedPayment", "contact": "example.com"}
LOG_FILTER = {"status": "failed"}


def _stamp(model, field: str, pks: list[int]) -> None:
    """Set `field` (auto_now_add, so only an update can) to BASE minus one second per three rows, in `pks` order."""
    for second in range(len(pks) // 3 + 1):
        when = BASE - timedelta(seconds=second, microseconds=250_000 if second % 5 == 0 else 0)
        model.objects.filter(pk__in=pks[second * 3 : second * 3 + 3]).update(**{field: when})


def _newest_first(rows, reverse: bool = True) -> list:
    return [value for _, _, value in sorted(rows, reverse=reverse)]


def audience_fill(*, team: Team, oldest_first: bool = False) -> list[str]:
    """130 contacts that AUDIENCE_FILTER keeps; 20 matching the search but of another source and 20 of the
    source not matching the search. Returns the kept emails."""
    people = [(f"keep{i:03}@example.com", "Import") for i in range(KEPT)]
    people += [(f"keep-stripe{i:02}@example.com", "Stripe webhook") for i in range(LEFT_OUT // 2)]
    people += [(f"drop{i:02}@example.com", "Import") for i in range(LEFT_OUT // 2)]
    random.Random(9).shuffle(people)
    Contact.objects.bulk_create(Contact(team=team, email=email, source=source) for email, source in people)
    by_email = dict(Contact.objects.filter(team=team).values_list("email", "pk"))
    _stamp(Contact, "created_at", [by_email[email] for email, _ in people])
    kept = Contact.objects.filter(team=team, email__startswith="keep", source="Import")
    return _newest_first(kept.values_list("created_at", "id", "email"), reverse=not oldest_first)


def events_fill(*, team: Team) -> list[int]:
    """130 failedPayment events of two example.com contacts that EVENTS_FILTER keeps; 20 successfulPayment
    events of the same contacts and 20 failedPayment events of a contact of another domain. Returns the
    kept events' ids."""
    ada, grace, bob = (
        Contact.objects.create(team=team, email=email)
        for email in ["ada@example.com", "grace@example.com", "bob@other.test"]
    )
    specs = [("failedPayment", ada if i % 2 else grace) for i in range(KEPT)]
    specs += [("successfulPayment", ada)] * (LEFT_OUT // 2) + [("failedPayment", bob)] * (LEFT_OUT // 2)
    random.Random(9).shuffle(specs)
    Event.objects.bulk_create(Event(team=team, contact=contact, name=name) for name, contact in specs)
    _stamp(Event, "created_at", sorted(Event.objects.filter(team=team).values_list("pk", flat=True)))
    kept = Event.objects.filter(team=team, name="failedPayment", contact__email__endswith="@example.com")
    return _newest_first(kept.values_list("created_at", "id", "id"))


def log_fill(*, endpoint: Endpoint) -> list[int]:
    """130 failed deliveries that LOG_FILTER keeps and 40 processed ones. Returns the failed ones' ids."""
    statuses = ["failed"] * KEPT + ["processed"] * LEFT_OUT
    random.Random(9).shuffle(statuses)
    Delivery.objects.bulk_create(
        Delivery(
            team=endpoint.team,
            endpoint=endpoint,
            stripe_event_id=f"evt_page_{i:03}",
            event_type="invoice.payment_failed",
            livemode=True,
            payload={},
            status=status,
            last_error="ValueError: something broke" if status == "failed" else "",
        )
        for i, status in enumerate(statuses)
    )
    _stamp(Delivery, "received_at", sorted(Delivery.objects.filter(endpoint=endpoint).values_list("pk", flat=True)))
    failed = Delivery.objects.filter(endpoint=endpoint, status="failed")
    return _newest_first(failed.values_list("received_at", "id", "id"))


RUNS_LOOP = "Dunning for paging"


def runs_fill(*, team: Team) -> list[int]:
    """A loop whose runs list, filtered to those waiting at its second step, holds 130 runs of 130 contacts;
    20 runs completed and 20 waiting at its third step are left out. Returns the kept runs' contact ids."""
    loop = Loop.objects.create(team=team, name=RUNS_LOOP, trigger_event_name="failedPayment", status="active")
    first = LoopStep.objects.create(team=team, loop=loop, kind="email", subject="Hi", body="Hi")
    wait = LoopStep.objects.create(team=team, loop=loop, parent=first, kind="timer", delay_value=3)
    later = LoopStep.objects.create(team=team, loop=loop, parent=wait, kind="timer", delay_value=3)
    specs = (
        [("waiting", wait)] * KEPT + [("completed", None)] * (LEFT_OUT // 2) + [("waiting", later)] * (LEFT_OUT // 2)
    )
    random.Random(9).shuffle(specs)
    contacts = Contact.objects.bulk_create(
        Contact(team=team, email=f"run{i:03}@example.com") for i in range(len(specs))
    )
    LoopRun.objects.bulk_create(
        LoopRun(team=team, loop=loop, contact=contact, entry_key="once", status=status, step=step)
        for contact, (status, step) in zip(contacts, specs, strict=True)
    )
    _stamp(LoopRun, "created_at", sorted(LoopRun.objects.filter(loop=loop).values_list("pk", flat=True)))
    kept = LoopRun.objects.filter(loop=loop, status="waiting", step=wait)
    return _newest_first(kept.values_list("created_at", "id", "contact_id"))
