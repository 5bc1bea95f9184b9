"""Sending through a real SMTP server on localhost: at most once per (run, step), and unsubscribing."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from contacts.models import Contact, ListMembership, MailingList
from contacts.services import contact_sync
from loops.models import EmailMessage, Loop, LoopRun, LoopStep
from loops.services.queueing import email_queue
from loops.services.sending import email_claim, emails_drain, emails_sweep
from loops.services.unsubscribing import unsubscribe_contact_for, unsubscribe_token, unsubscribe_url
from loops.tasks import drain_emails

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(team):
    """One queued message for Ada, as an email step leaves it."""
    contact = contact_sync(team=team, email="ada@example.com", full_name="Ada Lovelace").contact
    loop = Loop.objects.create(team=team, name="L", trigger_event_name="x", status="active")
    step = LoopStep.objects.create(
        team=team,
        loop=loop,
        kind="email",
        subject="Hello {{ contact.first_name }}",
        body="Hi **{{ contact.first_name }}**",
    )
    run = LoopRun.objects.create(team=team, loop=loop, contact=contact)
    return email_queue(run=run, step=step)


def test_sends_through_smtp_with_both_parts_and_one_click_headers(smtp_server, queued):
    emails_drain()
    [received] = smtp_server.messages
    assert received["To"] == "ada@example.com" and received["Subject"] == "Hello Ada"
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = received["List-Unsubscribe"].strip().removeprefix("<").removesuffix(">")
    prefix = unsubscribe_url(queued.contact).rsplit("/unsubscribe/", 1)[0] + "/unsubscribe/"
    assert link.startswith(prefix)  # signed with a time stamp: the token itself is checked by what it opens
    assert unsubscribe_contact_for(link.removeprefix(prefix).rstrip("/")) == queued.contact
    text = received.get_body(preferencelist=("plain",)).get_content()
    html = received.get_body(preferencelist=("html",)).get_content()
    assert "Hi Ada" in text and "<strong>Ada</strong>" in html
    queued.refresh_from_db()
    assert queued.status == "sent" and queued.sent_at and queued.provider_message_id == received["Message-ID"]


def test_a_retried_send_task_never_sends_twice(smtp_server, queued):
    drain_emails.apply()
    drain_emails.apply()  # the same task delivered again (a message delivered twice)
    emails_drain()
    assert len(smtp_server.messages) == 1
    queued.refresh_from_db()
    assert queued.attempts == 1


def test_worker_killed_between_claim_and_send_never_sends_twice(smtp_server, queued):
    assert email_claim(message_id=queued.id)  # the worker claimed it, then died before sending
    drain_emails.apply()  # the task delivered again (a message delivered twice)
    assert smtp_server.messages == []
    EmailMessage.objects.filter(id=queued.id).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert emails_sweep() == {"requeued": 0, "failed_stale": 1}
    queued.refresh_from_db()
    assert queued.status == "failed" and "never gets it twice" in queued.error
    assert smtp_server.messages == []


def test_a_worker_whose_reservation_lapsed_does_not_send_what_another_sent(smtp_server, queued, monkeypatch):
    """The claim (queued → sending) is what stops a second send when two workers hold the same message."""
    import time_machine

    from loops.services import sending

    stale = sending.emails_reserve()  # a slow worker's batch...
    with time_machine.travel(timezone.now() + sending.RESERVE_LEASE + timedelta(seconds=1)):
        emails_drain()  # ...whose reservation ran out: another worker sends it
        batches = iter([stale, []])
        monkeypatch.setattr(sending, "emails_reserve", lambda limit: next(batches))
        emails_drain()  # the slow worker gets to its batch at last
    assert len(smtp_server.messages) == 1
    queued.refresh_from_db()
    assert queued.status == "sent" and queued.attempts == 1


def test_rejected_recipient_is_a_permanent_failure(smtp_server, queued):
    smtp_server.refuse.add("ada@example.com")
    emails_drain()
    queued.refresh_from_db()
    assert queued.status == "failed" and "550" in queued.error
    assert smtp_server.messages == []


def test_smtp_down_is_temporary_and_the_retry_sends_it(smtp_server, queued, settings):
    settings.EMAIL_PORT = 9  # nothing listens there
    emails_drain()
    queued.refresh_from_db()
    assert queued.status == "queued" and queued.error and queued.next_attempt_at > timezone.now()
    settings.EMAIL_PORT = smtp_server.port
    EmailMessage.objects.filter(id=queued.id).update(next_attempt_at=timezone.now())  # its backoff is over
    emails_drain()
    assert len(smtp_server.messages) == 1
    queued.refresh_from_db()
    assert (queued.status, queued.attempts) == ("sent", 2)


def test_contact_unsubscribed_after_queueing_is_skipped(smtp_server, queued):
    Contact.objects.filter(pk=queued.contact_id).update(subscribed=False)
    emails_drain()
    queued.refresh_from_db()
    assert queued.status == "skipped" and smtp_server.messages == []


def test_sweeper_requeues_messages_whose_wake_up_was_lost(queued, mailoutbox, settings):
    EmailMessage.objects.filter(id=queued.id).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    from loopsync.celery import app

    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        assert emails_sweep() == {"requeued": 1, "failed_stale": 0}
    finally:
        app.conf.task_always_eager = eager
    assert len(mailoutbox) == 1


class TestUnsubscribePage:
    def test_get_asks_and_post_unsubscribes(self, client, queued):
        url = unsubscribe_url(queued.contact)
        page = client.get(url)
        assert page.status_code == 200 and "ada@example.com" in page.content.decode()
        assert Contact.objects.get(pk=queued.contact_id).subscribed  # a link scanner's GET changes nothing
        done = client.post(url)
        assert done.status_code == 200 and "unsubscribed" in done.content.decode()
        assert not Contact.objects.get(pk=queued.contact_id).subscribed

    def test_one_click_post_from_a_mail_client_works_without_csrf(self, queued):
        from django.test import Client

        response = Client(enforce_csrf_checks=True).post(
            unsubscribe_url(queued.contact),
            data="List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded",
        )
        assert response.status_code == 200
        assert not Contact.objects.get(pk=queued.contact_id).subscribed

    def test_a_forged_token_is_404_and_changes_nothing(self, client, queued):
        url = unsubscribe_url(queued.contact)
        forged = re.sub(r"/unsubscribe/([^/]+)/", lambda m: f"/unsubscribe/{m.group(1)[:-2]}xx/", url)
        assert client.post(forged).status_code == 404
        assert Contact.objects.get(pk=queued.contact_id).subscribed


def test_any_anymail_provider_by_setting_records_its_message_id(queued, settings):
    from django.core import mail

    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"  # anymail's offline provider
    emails_drain()
    [sent] = mail.outbox
    assert sent.to == ["ada@example.com"] and sent.anymail_status.status == {"sent"}
    queued.refresh_from_db()
    assert queued.status == "sent" and queued.provider_message_id == str(sent.anymail_status.message_id)


def test_no_answer_after_sending_is_failed_and_never_sent_again(smtp_server, queued, settings):
    """The server takes the message but its answer comes after our timeout: it may have been
    delivered, so it is not sent again, neither at once on a new connection nor later."""
    import time

    settings.EMAIL_TIMEOUT = 0.5
    smtp_server.delay = 1.5
    emails_drain()
    queued.refresh_from_db()
    assert queued.status == "failed" and "not retried" in queued.error
    time.sleep(1.5)
    assert emails_sweep() == {"requeued": 0, "failed_stale": 0}
    assert len(smtp_server.messages) == 1


def test_a_connection_the_server_closed_while_idle_is_reopened_before_sending(smtp_server, team, queued):
    from aiosmtpd.controller import Controller

    from loops.services import sending

    emails_drain()  # leaves this thread's connection open
    smtp_server.controller.stop()  # the server goes away, closing it
    sending._local.last_used -= sending.IDLE_CHECK_AFTER_SECONDS + 1  # as if it had been idle a while
    smtp_server.controller = Controller(smtp_server, hostname="127.0.0.1", port=smtp_server.port)
    smtp_server.controller.start()
    second = EmailMessage.objects.create(
        team=team,
        contact=queued.contact,
        to_email="ada@example.com",
        from_email="a@example.com",
        subject="Second",
        html_body="<p>2</p>",
        text_body="2",
        next_attempt_at=timezone.now(),
    )
    emails_drain()
    second.refresh_from_db()
    assert second.status == "sent"
    assert [m["Subject"] for m in smtp_server.messages] == ["Hello Ada", "Second"]


def test_a_worker_dying_mid_batch_leaves_what_it_had_not_started_for_the_next(smtp_server, team, queued):
    import time_machine

    from loops.services.sending import emails_drain, emails_reserve

    others = [
        EmailMessage.objects.create(
            team=team,
            contact=queued.contact,
            to_email="ada@example.com",
            from_email="a@example.com",
            subject=f"Other {i}",
            html_body="<p>x</p>",
            text_body="x",
            next_attempt_at=timezone.now(),
        )
        for i in range(2)
    ]
    assert len(emails_reserve(limit=10)) == 3  # reserved by a worker that then died before sending any
    assert emails_drain() == 0  # still reserved by it
    with time_machine.travel(timezone.now() + timedelta(minutes=3)):
        assert emails_sweep()["requeued"] == 3
        emails_drain()
    assert sorted(m["Subject"] for m in smtp_server.messages) == ["Hello Ada", "Other 0", "Other 1"]
    assert all(m.status == "sent" for m in EmailMessage.objects.filter(id__in=[o.id for o in others]))


def test_the_unsubscribe_link_of_a_test_email_says_what_it_is(client):
    from django.urls import reverse

    from loops.services.unsubscribing import TEST_EMAIL_LINK

    response = client.get(reverse("loops:unsubscribe", args=[TEST_EMAIL_LINK]))
    assert response.status_code == 200 and "This is a test email's link" in response.content.decode()


def test_the_unsubscribe_page_is_the_teams_offers_its_public_lists_and_has_an_undo(client, team):
    news = MailingList.objects.create(team=team, name="Newsletter", is_public=True, description="Monthly")
    product = MailingList.objects.create(team=team, name="Product updates", is_public=True)
    private = MailingList.objects.create(team=team, name="Internal VIPs", is_public=False)
    contact = Contact.objects.create(team=team, email="reader@example.com")
    ListMembership.objects.create(team=team, mailing_list=news, contact=contact)
    ListMembership.objects.create(team=team, mailing_list=private, contact=contact)
    url = reverse("loops:unsubscribe", args=[unsubscribe_token(contact)])
    page = client.get(url).content.decode()
    assert f'<span class="brand">{team.name}</span>' in page and ">LoopSync<" not in page
    assert "Newsletter" in page and "Product updates" in page and "Internal VIPs" not in page
    assert f'value="{news.pk}" checked' in page and 'aria-label="Main"' not in page
    saved = client.post(url, {"action": "lists", "lists": [str(product.pk), str(private.pk)]}).content.decode()
    assert "Your preferences are saved." in saved
    assert set(ListMembership.objects.filter(contact=contact).values_list("mailing_list__name", flat=True)) == {
        "Product updates", "Internal VIPs"
    }  # fmt: skip  # the private list is never touched, by the page
    contact.refresh_from_db()
    assert contact.subscribed
    done = client.post(url).content.decode()
    assert "You're unsubscribed" in done and "Undo: resubscribe me" in done
    client.post(url, {"action": "resubscribe"})
    contact.refresh_from_db()
    assert contact.subscribed
