"""A mailing list's delete confirmation names the loops that use it (through contacts.timeline's list_uses, which
the loops app fills): its trigger, Update contact steps that add to it or remove from it, filter and branch rules
on it; and after the deletion those loops are as the page said."""

import html

import pytest
from django.urls import reverse

from conftest import chain_steps
from contacts.models import Contact, MailingList
from loops.models import Loop, LoopStep
from loops.services.updating import contact_update_apply

pytestmark = pytest.mark.django_db


def on_list(mailing_list: MailingList, op: str = "in_list") -> dict:
    return {"match": "all", "rules": [{"field": "lists", "op": op, "value": str(mailing_list.pk)}]}


def test_deleting_a_list_names_the_loops_that_use_it_and_they_stop_using_it(logged_in, team):
    news = MailingList.objects.create(team=team, name="News")
    other = MailingList.objects.create(team=team, name="Other")
    started = Loop.objects.create(team=team, name="Welcome", trigger="list_added", trigger_list=news)
    chain_steps(started, LoopStep(kind="email", subject="Hi", body="x"))
    joining = Loop.objects.create(team=team, name="Sign up", trigger_event_name="go")
    join, _ = chain_steps(
        joining,
        LoopStep(kind="update_contact", update_action="join_list", update_list=news),
        LoopStep(kind="update_contact", update_action="leave_list", update_list=other),
    )
    filtered = Loop.objects.create(team=team, name="Readers only", trigger_event_name="go")
    nested = {"match": "all", "rules": [{"match": "any", "rules": on_list(news, "not_in_list")["rules"]}]}
    chain_steps(filtered, LoopStep(kind="filter", conditions=nested), LoopStep(kind="email", subject="Hi", body="x"))
    branched = Loop.objects.create(team=team, name="Split", trigger_event_name="go")
    paths = [{"name": "Readers", "conditions": on_list(news)}, {"name": "Everyone else", "conditions": {}}]
    chain_steps(branched, LoopStep(kind="branch", paths=paths))
    elsewhere = Loop.objects.create(team=team, name="Unrelated", trigger="list_added", trigger_list=other)
    chain_steps(elsewhere, LoopStep(kind="filter", conditions=on_list(other)))

    page = html.unescape(logged_in.get(reverse("contacts:list-delete", args=[news.pk])).content.decode())
    assert "Loops use it." in page and "starts no more runs" in page and "Unrelated" not in page
    for loop, what in [
        (started, "its trigger"),
        (joining, "update contact"),
        (filtered, "audience filter"),
        (branched, "branch"),
    ]:
        assert f'<a href="{reverse("loops:loop", args=[loop.pk])}">Loop “{loop.name}”: {what}</a>' in page
    assert page.count("Loop “Sign up”") == 1  # its step that leaves another list is not this list's

    logged_in.post(reverse("contacts:list-delete", args=[news.pk]))
    started.refresh_from_db()
    join.refresh_from_db()
    assert started.trigger_list_id is None and join.update_list_id is None
    contact = Contact.objects.create(team=team, email="ada@example.com")
    assert contact_update_apply(contact=contact, step=join) == "the mailing list was deleted: nothing changed"
    assert not contact.mailing_lists.exists()
    assert Loop.objects.filter(team=team).count() == 5  # the loops are kept
