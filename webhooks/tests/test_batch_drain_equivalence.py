"""The set-based drain gives what the one-by-one drain gives, on random batches of overlapping emails and customers."""

import json
import random
from datetime import UTC, datetime

import pytest
from django.db import transaction

from conftest import fixture_text, sign
from contacts.models import Contact
from loops.models import Event, LoopRun
from webhooks.models import Delivery
from webhooks.services import batching, processing
from webhooks.services.receiving import delivery_receive

EMAILS = ["a@x.com", "b@x.com", "c@x.com", "A@x.com", "d@x.com"]
CUSTOMERS = ["cus_1", "cus_2", "cus_3"]
NAMES = ["Ann One", "Bob Two", "", "Cy Three"]
T0 = 1_800_000_000


def body(kind: str, n: int, rng: random.Random) -> str:
    email = rng.choice(EMAILS)
    created = T0 + rng.randint(0, 6)
    name = rng.choice(NAMES)
    if kind in {"customer.created", "customer.updated", "customer.deleted"}:
        src = {
            "customer.created": "dj-stripe/customer.created.with_name.json",
            "customer.updated": "pay/customer.updated.json",
            "customer.deleted": "dj-stripe/customer.deleted.email_only.json",
        }[kind]
        p = json.loads(fixture_text(src))
        obj = p["data"]["object"]
        obj.update(id=rng.choice(CUSTOMERS), email=email, name=name)
        p["data"].pop("previous_attributes", None)
        if kind == "customer.updated" and rng.random() < 0.2:
            p["data"]["previous_attributes"] = {"email": rng.choice(EMAILS)}
    else:
        p = json.loads(fixture_text("pay/charge.refunded.json"))
        obj = p["data"]["object"]
        obj["customer"] = rng.choice([*CUSTOMERS, None, None])
        obj["billing_details"]["email"] = email
        obj["billing_details"]["name"] = name or None
    p.update(id=f"evt_{n}", created=created, livemode=True, type=kind)
    return json.dumps(p)


def snapshot(team):
    contacts = sorted(
        (
            c.email,
            c.first_name,
            c.last_name,
            c.stripe_customer_id,
            c.stripe_event_created,
            c.subscribed,
            json.dumps(c.properties, sort_keys=True),
            json.dumps(c.stripe_billing, sort_keys=True),
            c.user_group,
        )
        for c in Contact.objects.filter(team=team)
    )
    events = sorted(
        (e.idempotency_key, e.name, e.contact.email, json.dumps(e.properties, sort_keys=True))
        for e in Event.objects.filter(team=team)
    )
    runs = sorted(
        (r.loop.name, r.contact.email, r.event.idempotency_key if r.event else "")
        for r in LoopRun.objects.filter(team=team)
    )
    deliveries = sorted(Delivery.objects.filter(team=team).values_list("stripe_event_id", "status", "ignored_reason"))
    return contacts, events, runs, deliveries


def scenario(team, endpoint, seed: int):
    rng = random.Random(seed)
    for email in rng.sample(EMAILS[:3] + EMAILS[4:], rng.randint(0, 3)):
        Contact.objects.create(
            team=team,
            email=email,
            first_name=rng.choice(["Old", ""]),
            stripe_customer_id=rng.choice(["", *CUSTOMERS]),
            stripe_event_created=rng.choice([None, datetime.fromtimestamp(T0 + 3, UTC)]),
        )
    kinds = ["customer.created", "customer.updated", "charge.refunded", "customer.deleted"]
    for n in range(rng.randint(2, 14)):
        kind = rng.choices(kinds, weights=[4, 4, 3, 1])[0]
        text = body(kind, n, rng)
        delivery_receive(endpoint_uuid=endpoint.uuid, body=text.encode(), signature=sign(text))
    processing.deliveries_drain()
    return snapshot(team)


@pytest.mark.django_db
def test_set_based_drain_equals_one_by_one(team, make_endpoint, make_loop, monkeypatch):
    endpoint = make_endpoint(
        team,
        triggers={"customer.created": "custCreated", "customer.updated": "custUpdated", "charge.refunded": "refunded"},
    )
    added = make_loop(team)
    added.trigger, added.trigger_event_name, added.name = "contact_added", "", "added"
    added.save()
    on_event = make_loop(team)
    on_event.trigger, on_event.trigger_event_name, on_event.name = "event", "custUpdated", "on-updated"
    on_event.save()
    monkeypatch.setattr(processing, "DRAIN_LINGER_SECONDS", 0)
    real_partition = batching.partition
    set_based = []

    def partition(ordered, extracted, locked):
        simple, rest = real_partition(ordered, extracted, locked)
        set_based.extend(simple)
        return simple, rest

    diffs = []
    for seed in range(40):
        with transaction.atomic():
            monkeypatch.setattr(batching, "partition", partition)
            batch = scenario(team, endpoint, seed)
            transaction.set_rollback(True)
        with transaction.atomic():
            monkeypatch.setattr(batching, "partition", lambda ordered, extracted, *locked: ([], list(ordered)))
            single = scenario(team, endpoint, seed)
            transaction.set_rollback(True)
        if batch != single:
            for label, b, s in zip(("contacts", "events", "runs", "deliveries"), batch, single, strict=True):
                if b != s:
                    diffs.append((seed, label, sorted(set(b) - set(s)), sorted(set(s) - set(b))))
    assert set_based  # the set-based path took part of the batches: the comparison is not one path with itself
    assert not diffs, f"{len(diffs)} differences, the first: {diffs[:3]}"
