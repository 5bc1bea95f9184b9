"""The From of a loop's email step or a transactional email: on a domain the operator allows
(ALLOWED_SENDER_DOMAINS) or the team verified, exactly; refused when saved, and never used once the
domain is gone (the default sender is used instead)."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from accounts.models import SenderDomain
from accounts.services.senders import sender_domain_add, sender_email_problem
from conftest import main_line
from contacts.services import contact_sync
from loops.models import EmailMessage, Loop, LoopRun, LoopStep, LoopTemplate, TransactionalEmail
from loops.services.queueing import email_queue, transactional_queue
from loops.services.sending import emails_drain

pytestmark = pytest.mark.django_db

HINT = "verify acme.com in Settings → Sending, or leave From blank to use the default sender"


@pytest.fixture
def verified(team):
    domain = sender_domain_add(team=team, domain="acme.com")
    SenderDomain.objects.filter(pk=domain.pk).update(verified_at=timezone.now())
    return domain


def _email_step(team, **fields) -> LoopStep:
    loop = Loop.objects.create(team=team, name="L", trigger_event_name="x")
    return LoopStep(team=team, loop=loop, kind="email", subject="Hi", body="Hello", **fields)


def test_a_from_on_an_unknown_domain_is_refused_with_what_to_do(team):
    with pytest.raises(ValidationError) as caught:
        _email_step(team, from_email="billing@acme.com").clean()
    assert caught.value.message_dict["from_email"] == [f"acme.com is not a sender domain of this team: {HINT}."]


def test_the_operators_own_domain_is_refused_unless_listed(team, settings):
    settings.DEFAULT_FROM_EMAIL = "LoopSync <noreply@loopsync.example>"
    settings.ALLOWED_SENDER_DOMAINS = []
    assert "not a sender domain" in sender_email_problem(team_id=team.pk, email="support@loopsync.example")
    settings.ALLOWED_SENDER_DOMAINS = ["loopsync.example"]
    assert sender_email_problem(team_id=team.pk, email="support@LoopSync.Example") is None


def test_a_verified_domain_is_allowed_in_any_case(team, verified):
    _email_step(team, from_email="Billing@ACME.com").clean()
    assert sender_email_problem(team_id=team.pk, email="x@acme.com.") is None


def test_a_domain_added_but_not_verified_yet_says_so(team):
    sender_domain_add(team=team, domain="acme.com")
    problem = sender_email_problem(team_id=team.pk, email="billing@acme.com")
    assert problem.startswith("acme.com is not verified yet: publish its TXT record and verify it")


def test_subdomains_are_not_covered(team, verified, settings):
    settings.ALLOWED_SENDER_DOMAINS = ["shared.example"]
    assert "not a sender domain" in sender_email_problem(team_id=team.pk, email="x@mail.acme.com")
    assert "not a sender domain" in sender_email_problem(team_id=team.pk, email="x@eu.shared.example")


def test_another_teams_verified_domain_does_not_count(team, other_team):
    theirs = sender_domain_add(team=other_team, domain="acme.com")
    SenderDomain.objects.filter(pk=theirs.pk).update(verified_at=timezone.now())
    assert "not a sender domain" in sender_email_problem(team_id=team.pk, email="x@acme.com")


def test_a_blank_from_is_always_allowed(team):
    _email_step(team, from_email="").clean()


def test_a_transactional_email_with_an_unverified_from_is_refused(team, verified):
    transactional = TransactionalEmail(team=team, public_id="t", name="T", subject="S", body="B")
    transactional.from_email = "billing@globex.example"
    with pytest.raises(ValidationError) as caught:
        transactional.clean()
    assert "globex.example is not a sender domain" in caught.value.message_dict["from_email"][0]
    transactional.from_email = "billing@acme.com"
    transactional.clean()


def test_the_step_editor_shows_the_refusal_on_the_from_field(logged_in, team, make_loop):
    loop = make_loop(team, activate=False)
    step = main_line(loop)[0]
    data = {"subject": step.subject, "preview_text": "", "body": step.body, "from_name": "Acme"}
    response = logged_in.post(
        reverse("loops:step", args=[loop.pk, step.pk]), {**data, "from_email": "ceo@acme.com", "reply_to": ""}
    )
    body = response.content.decode()
    assert response.status_code == 400 and "acme.com is not a sender domain of this team" in body
    assert 'value="ceo@acme.com"' in body  # what was typed is kept
    step.refresh_from_db()
    assert step.from_email == ""


def test_the_transactional_editor_shows_the_refusal_on_the_from_field(logged_in, team):
    form = {"name": "Receipt", "subject": "S", "preview_text": "", "body": "B", "from_name": "", "reply_to": ""}
    response = logged_in.post(reverse("loops:transactional-new"), {**form, "from_email": "x@acme.com"})
    assert response.status_code == 400 and "acme.com is not a sender domain" in response.content.decode()
    assert not TransactionalEmail.objects.exists()


def test_the_editor_saves_a_from_on_a_verified_domain(logged_in, team, make_loop, verified):
    loop = make_loop(team, activate=False)
    step = main_line(loop)[0]
    data = {"subject": step.subject, "preview_text": "", "body": step.body, "from_name": "Acme", "reply_to": ""}
    response = logged_in.post(reverse("loops:step", args=[loop.pk, step.pk]), {**data, "from_email": "ceo@acme.com"})
    assert response.status_code == 302
    step.refresh_from_db()
    assert step.from_email == "ceo@acme.com"


def test_activation_lists_a_from_that_is_no_longer_allowed(logged_in, team, make_loop, verified):
    loop = make_loop(team, activate=False)
    LoopStep.objects.filter(pk=main_line(loop)[0].pk).update(from_email="ceo@acme.com")
    verified.delete()
    response = logged_in.post(reverse("loops:loop-status", args=[loop.pk]), {"action": "activate"}, follow=True)
    assert "acme.com is not a sender domain of this team" in response.content.decode()
    loop.refresh_from_db()
    assert loop.status == "draft"


def test_every_seeded_template_still_activates(team, make_loop):
    make_loop(team, activate=False)  # seeds the templates when a transactional test emptied them
    for template in LoopTemplate.objects.all():
        assert make_loop(team, slug=template.slug).status == "active"


def test_at_send_time_a_from_whose_domain_was_deleted_falls_back_to_the_default_sender(
    team, verified, smtp_server, settings
):
    settings.DEFAULT_FROM_EMAIL = "LoopSync <noreply@loopsync.example>"
    ada = contact_sync(team=team, email="ada@example.com", full_name="Ada Lovelace").contact
    bob = contact_sync(team=team, email="bob@example.com", full_name="Bob").contact
    loop = Loop.objects.create(team=team, name="L", trigger_event_name="x", status="active")
    step = LoopStep.objects.create(
        team=team,
        loop=loop,
        kind="email",
        subject="Hi",
        body="Hello",
        from_name="Acme",
        from_email="ceo@acme.com",
    )
    first = email_queue(run=LoopRun.objects.create(team=team, loop=loop, contact=ada), step=step)
    assert first.from_email == "Acme <ceo@acme.com>"
    verified.delete()
    second = email_queue(run=LoopRun.objects.create(team=team, loop=loop, contact=bob), step=step)
    assert second.from_email == "LoopSync <noreply@loopsync.example>"
    emails_drain()
    [received] = [m for m in smtp_server.messages if m["To"] == "bob@example.com"]
    assert received["From"] == "LoopSync <noreply@loopsync.example>"


def test_a_transactional_email_whose_domain_was_deleted_goes_from_the_default_sender(team, verified, settings):
    settings.DEFAULT_FROM_EMAIL = "noreply@loopsync.example"
    transactional = TransactionalEmail.objects.create(
        team=team, public_id="r", name="R", subject="S", body="B", from_email="billing@acme.com"
    )
    assert transactional_queue(
        transactional=transactional, to_email="a@b.example", contact=None, data={}
    ).from_email == ("billing@acme.com")
    verified.delete()
    message = transactional_queue(transactional=transactional, to_email="a@b.example", contact=None, data={})
    assert message.from_email == "noreply@loopsync.example"
    assert EmailMessage.objects.count() == 2
