"""Branches, experiments and "Update contact" through the whole path: signed webhooks over HTTP, a real Celery
worker on Redis, PostgreSQL, and loops written in the JSON format (loops.services.specs)."""

import json
from collections import Counter

import pytest

from conftest import fixture_text
from contacts.models import Contact, ListMembership
from contacts.services import contact_upsert, mailing_list_create
from loops.models import EmailMessage, LoopRun, LoopStep
from loops.services import events_fire_many, loop_activate, loop_import
from loops.services.batches import Fire
from loops.services.runs import experiment_assign
from tests.test_pipeline import post, wait_for

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

FAILED = "pay/invoice.payment_failed.json"


def _email(subject: str, body: str = "Hi {{ contact.first_name }}") -> dict:
    return {"type": "email", "subject": subject, "body": body}


def _failed_for(email: str, n: int) -> str:
    event = json.loads(fixture_text(FAILED))
    event["id"] = f"evt_branch_{n}"
    invoice = event["data"]["object"]
    invoice.update(id=f"in_branch_{n}", customer=f"cus_branch_{n}", customer_email=email)
    return json.dumps(event)


def test_a_branch_sends_each_contact_down_its_path_and_update_contact_starts_other_loops(
    postgres, celery_worker, live_server, endpoint, smtp_server
):
    team = endpoint.team
    dunning = mailing_list_create(team=team, name="Dunning")
    contact_upsert(team=team, email="pro@example.org", properties={"plan": "Pro"})  # declares `plan` (text)
    contact_upsert(team=team, email="free@example.org", properties={"plan": "Starter"})
    loop_activate(
        loop=loop_import(
            team=team,
            spec={
                "name": "Failed payment by plan",
                "trigger": {"type": "event", "event": "failedPayment"},
                "frequency": {"type": "per_key", "key": "invoice_id"},
                "nodes": [
                    {
                        "id": "split",
                        "type": "branch",
                        "paths": [
                            {
                                "name": "Pro",
                                "conditions": {
                                    "match": "all",
                                    "rules": [{"field": "contact.properties.plan", "op": "equals", "value": "Pro"}],
                                },
                            },
                            {"name": "Everyone else", "conditions": None},
                        ],
                    },
                    {
                        "id": "vip",
                        "type": "update_contact",
                        "action": "set_property",
                        "property": "tier",
                        "value": "vip",
                    },
                    {"id": "pro-mail", "type": "email", **_email("Pro path")},
                    {"id": "join", "type": "update_contact", "action": "join_list", "list": "Dunning"},
                    {"id": "other-mail", "type": "email", **_email("Default path")},
                ],
                "edges": [
                    {"from": "split", "port": 0, "to": "vip"},
                    {"from": "vip", "to": "pro-mail"},
                    {"from": "split", "port": 1, "to": "join"},
                    {"from": "join", "to": "other-mail"},
                ],
            },
        )
    )
    loop_activate(  # started by the Pro path's update
        loop=loop_import(
            team=team,
            spec={
                "name": "Welcome to VIP",
                "trigger": {"type": "contact_updated", "field": "contact.properties.tier", "to": "vip"},
                "frequency": {"type": "once"},
                "nodes": [{"id": "n1", **_email("You are a VIP")}],
                "edges": [],
            },
        )
    )
    loop_activate(  # started by the other path's list
        loop=loop_import(
            team=team,
            spec={
                "name": "Dunning list",
                "trigger": {"type": "list_added", "list": "Dunning"},
                "frequency": {"type": "every"},
                "nodes": [{"id": "n1", **_email("On the dunning list")}],
                "edges": [],
            },
        )
    )
    for n, email in enumerate(["pro@example.org", "free@example.org"]):
        assert post(live_server, endpoint, _failed_for(email, n)) == (200, {"status": "queued"})

    wait_for(lambda: EmailMessage.objects.filter(status="sent").count() == 4, timeout=30)
    sent = {(m.to_email, m.subject) for m in EmailMessage.objects.filter(status="sent")}
    assert sent == {
        ("pro@example.org", "Pro path"),
        ("pro@example.org", "You are a VIP"),
        ("free@example.org", "Default path"),
        ("free@example.org", "On the dunning list"),
    }
    assert {m["X-Envelope-To"] for m in smtp_server.messages} == {"pro@example.org", "free@example.org"}
    pro, free = (Contact.objects.get(team=team, email=e) for e in ("pro@example.org", "free@example.org"))
    assert pro.properties["tier"] == "vip" and "tier" not in free.properties
    assert ListMembership.objects.filter(contact=free, mailing_list=dunning).exists()
    assert not ListMembership.objects.filter(contact=pro).exists()
    branch = LoopStep.objects.get(kind="branch")
    ports = {run.contact.email: run.choices[f"s{branch.id}"] for run in LoopRun.objects.filter(loop=branch.loop)}
    assert ports == {"pro@example.org": 0, "free@example.org": 1}


def test_an_experiment_splits_1000_contacts_by_its_rates_and_keeps_each_run_in_its_variant(
    postgres, celery_worker, team
):
    variants = [("A", 50, True), ("B", 30, False), ("C", 20, False)]
    loop = loop_activate(
        loop=loop_import(
            team=team,
            spec={
                "name": "Subject line test",
                "trigger": {"type": "event", "event": "signedUp"},
                "nodes": [
                    {
                        "id": "split",
                        "type": "experiment",
                        "variants": [{"name": n, "percent": p, "control": c} for n, p, c in variants],
                    },
                    *(
                        {"id": n, "type": "update_contact", "action": "set_property", "property": "variant", "value": n}
                        for n, _, _ in variants
                    ),
                ],
                "edges": [{"from": "split", "port": port, "to": n} for port, (n, _, _) in enumerate(variants)],
            },
        )
    )
    contacts = Contact.objects.bulk_create(Contact(team=team, email=f"c{i}@example.com") for i in range(1000))
    events_fire_many(
        fires=[Fire(contact=c, name="signedUp", idempotency_key=f"signup-{c.pk}", properties={}) for c in contacts]
    )
    wait_for(lambda: LoopRun.objects.filter(loop=loop, status="completed").count() == 1000, timeout=90)

    experiment = LoopStep.objects.get(loop=loop, kind="experiment")
    runs = list(LoopRun.objects.filter(loop=loop).select_related("contact"))
    by_variant = Counter(run.contact.properties["variant"] for run in runs)
    for name, percent, _ in variants:
        assert abs(by_variant[name] - percent * 10) <= 50, by_variant  # within 5 points of its rate
    from loops.selectors import loop_outline

    shown = {row["path"]["name"]: row["taken"] for row in loop_outline(loop=loop) if row["type"] == "path"}
    assert {name: counts["runs"] for name, counts in shown.items()} == dict(by_variant)  # each variant's stats
    assert all(counts["completed"] == counts["runs"] for counts in shown.values())
    for run in runs:  # sticky: the recorded port, the contact's variant and the assignment agree
        port = run.choices[f"s{experiment.id}"]
        assert variants[port][0] == run.contact.properties["variant"]
        assert experiment_assign(run_id=run.id, step=experiment) == port
