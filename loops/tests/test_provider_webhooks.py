"""Bounces and complaints from the email provider, through django-anymail's Postmark tracking webhook: an email
sent with anymail's real Postmark backend (to a local fake of Postmark's API), then Postmark's webhook payload,
posted with the webhook secret, about that email's MessageID."""

import base64
import json
from pathlib import Path

import pytest
from django.urls import reverse

from api.services.suppressions import suppression_remove
from conftest import POSTMARK_WEBHOOK_AUTH
from contacts.models import Contact
from contacts.services import ResubscribeRefused, contact_set_subscribed, contact_sync, contact_upsert
from loops.models import EmailActivity, EmailMessage, Loop, LoopRun, LoopStep
from loops.services.queueing import email_queue
from loops.services.sending import emails_drain

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "postmark"
URL = "/anymail/postmark/tracking/"


def _auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _sent(team, postmark, email="ada@example.com") -> EmailMessage:
    contact = contact_sync(team=team, email=email, full_name="Ada Lovelace").contact
    loop = Loop.objects.create(team=team, name=f"L {email}", trigger_event_name="x", status="active")
    step = LoopStep.objects.create(team=team, loop=loop, kind="email", subject="Your payment failed", body="Hi")
    message = email_queue(run=LoopRun.objects.create(team=team, loop=loop, contact=contact), step=step)
    emails_drain()
    message.refresh_from_db()
    assert message.status == "sent" and message.provider_message_id == postmark.sent[-1]["MessageID"]
    return message


def _post(client, name: str, message: EmailMessage | None, auth=POSTMARK_WEBHOOK_AUTH, **changes):
    payload = json.loads((FIXTURES / name).read_text())
    payload["MessageID"] = message.provider_message_id if message else "00000000-0000-0000-0000-000000000000"
    payload.update(changes)
    return client.post(
        URL, json.dumps(payload), content_type="application/json", HTTP_AUTHORIZATION=_auth(*auth) if auth else ""
    )


def test_a_hard_bounce_suppresses_the_contact_with_the_providers_reason(client, team, postmark, logged_in):
    message = _sent(team, postmark)
    response = _post(client, "bounce_hard.json", message)
    assert response.status_code == 200
    contact = Contact.objects.get(pk=message.contact_id)
    assert not contact.subscribed and contact.unsubscribed_by == "bounce"
    assert contact.unsubscribe_reason.startswith("Postmark: The server was unable to deliver your message")
    message.refresh_from_db()
    assert message.bounced_at is not None and message.complained_at is None
    [bounce] = EmailActivity.objects.filter(message=message)
    assert bounce.kind == "bounce" and bounce.contact_id == contact.pk
    page = logged_in.get(reverse("contacts:detail", args=[contact.pk])).content.decode()
    assert "unsubscribed by a hard bounce" in page and "The provider said: Postmark: The server was unable" in page
    assert "suppression removal" in page  # why the team cannot resubscribe it here
    email_page = logged_in.get(reverse("loops:email", args=[message.pk])).content.decode()
    assert "Bounced on" in email_page


def test_the_same_bounce_posted_again_is_recorded_once(client, team, postmark):
    message = _sent(team, postmark)
    assert _post(client, "bounce_hard.json", message).status_code == 200
    assert _post(client, "bounce_hard.json", message).status_code == 200  # Postmark retries
    assert EmailActivity.objects.filter(message=message).count() == 1


def test_a_soft_bounce_is_recorded_and_suppresses_nobody(client, team, postmark):
    message = _sent(team, postmark)
    assert _post(client, "bounce_soft.json", message).status_code == 200
    contact = Contact.objects.get(pk=message.contact_id)
    assert contact.subscribed
    [deferred] = EmailActivity.objects.filter(message=message)
    assert deferred.kind == "deferred" and "temporarily" in deferred.detail
    message.refresh_from_db()
    assert message.bounced_at is None


def test_a_spam_complaint_suppresses_the_contact(client, team, postmark):
    message = _sent(team, postmark)
    assert _post(client, "spam_complaint.json", message).status_code == 200
    contact = Contact.objects.get(pk=message.contact_id)
    assert not contact.subscribed and contact.unsubscribed_by == "complaint"
    message.refresh_from_db()
    assert message.complained_at is not None


def test_a_delivery_is_recorded_on_the_email(client, team, postmark):
    message = _sent(team, postmark)
    assert _post(client, "delivery.json", message).status_code == 200
    assert EmailActivity.objects.get(message=message).kind == "delivered"
    assert Contact.objects.get(pk=message.contact_id).subscribed


def test_a_webhook_with_a_wrong_secret_is_refused_and_changes_nothing(client, team, postmark):
    message = _sent(team, postmark)
    assert _post(client, "bounce_hard.json", message, auth=("postmark", "guess")).status_code == 400
    assert _post(client, "bounce_hard.json", message, auth=None).status_code == 400
    assert Contact.objects.get(pk=message.contact_id).subscribed and not EmailActivity.objects.exists()


def test_without_a_webhook_secret_the_provider_webhooks_are_off(client, team, postmark, settings):
    message = _sent(team, postmark)
    settings.ANYMAIL = {key: value for key, value in settings.ANYMAIL.items() if key != "WEBHOOK_SECRET"}
    assert _post(client, "bounce_hard.json", message, auth=None).status_code == 404
    assert Contact.objects.get(pk=message.contact_id).subscribed and not EmailActivity.objects.exists()


def test_a_bounce_of_an_unknown_email_is_answered_and_ignored(client, team, postmark):
    contact = contact_sync(team=team, email="ada@example.com").contact
    assert _post(client, "bounce_hard.json", None).status_code == 200
    contact.refresh_from_db()
    assert contact.subscribed and not EmailActivity.objects.exists()


def test_a_body_that_is_not_json_is_a_400(client, team, postmark):
    response = client.post(
        URL, "not json", content_type="application/json", HTTP_AUTHORIZATION=_auth(*POSTMARK_WEBHOOK_AUTH)
    )
    assert response.status_code == 400


def test_a_bounce_suppresses_only_the_contact_of_the_team_that_sent_it(client, team, other_team, postmark):
    message = _sent(team, postmark)
    elsewhere = contact_sync(team=other_team, email="ada@example.com").contact
    _post(client, "bounce_hard.json", message)
    elsewhere.refresh_from_db()
    assert elsewhere.subscribed


def test_a_bounce_replaces_an_unsubscribe_a_team_member_could_undo_but_not_the_contacts_own(client, team, postmark):
    by_team = _sent(team, postmark)
    contact_set_subscribed(contact=by_team.contact, subscribed=False, by="team")
    by_link = _sent(team, postmark, email="bob@example.com")
    contact_set_subscribed(contact=by_link.contact, subscribed=False, by="link")
    _post(client, "bounce_hard.json", by_team)
    _post(client, "bounce_hard.json", by_link, ID=99)
    assert Contact.objects.get(pk=by_team.contact_id).unsubscribed_by == "bounce"
    kept = Contact.objects.get(pk=by_link.contact_id)
    assert kept.unsubscribed_by == "link" and kept.unsubscribe_reason == ""


def test_a_suppressed_contact_is_resubscribed_only_by_the_suppression_removal(client, team, postmark, logged_in):
    message = _sent(team, postmark)
    _post(client, "bounce_hard.json", message)
    contact = Contact.objects.get(pk=message.contact_id)
    with pytest.raises(ResubscribeRefused):
        contact_set_subscribed(contact=contact, subscribed=True, by="team")
    contact_upsert(team=team, email="ada@example.com", fields={"subscribed": True})  # the API's update
    contact.refresh_from_db()
    assert not contact.subscribed and contact.unsubscribed_by == "bounce"
    logged_in.post(reverse("contacts:edit", args=[contact.pk]), {"email": contact.email, "subscribed": "on"})
    contact.refresh_from_db()
    assert not contact.subscribed  # the form's box is disabled: what is posted is not taken
    suppression_remove(team=team, contact=contact)
    contact.refresh_from_db()
    assert contact.subscribed and contact.unsubscribed_by == "" and contact.unsubscribe_reason == ""


def test_a_later_email_to_a_bounced_contact_is_skipped(client, team, postmark):
    message = _sent(team, postmark)
    _post(client, "bounce_hard.json", message)
    step = message.step
    again = email_queue(
        run=LoopRun.objects.create(
            team=team, loop=step.loop, contact=Contact.objects.get(pk=message.contact_id), entry_key="event:2"
        ),
        step=step,
    )
    assert again.status == "skipped"
    sent_before = len(postmark.sent)
    emails_drain()
    assert len(postmark.sent) == sent_before


# --- other providers' payloads (anymail.webhooks.<provider>), about an email sent as above ------------------

PROVIDERS = {
    "brevo": lambda message, soft: {
        "event": "soft_bounce" if soft else "hard_bounce",
        "email": "ada@example.com",
        "message-id": message.provider_message_id,
        "ts_epoch": 1765000000000,
        "reason": "mailbox full" if soft else "user unknown",
    },
    "sendgrid": lambda message, soft: [
        {
            "event": "bounce",
            "type": "blocked" if soft else "bounce",
            "email": "ada@example.com",
            "timestamp": 1765000000,
            "smtp-id": message.provider_message_id,
            "sg_event_id": f"sg-{soft}",
            "reason": "450 try again later" if soft else "550 5.1.1 no such user",
        }
    ],
    "mailjet": lambda message, soft: [
        {
            "event": "bounce",
            "time": 1765000000,
            "MessageID": message.provider_message_id,
            "email": "ada@example.com",
            "hard_bounce": not soft,
            "error_related_to": "recipient",
            "error": "quota exceeded" if soft else "user unknown",
        }
    ],
    "sparkpost": lambda message, soft: [
        {
            "msys": {
                "message_event": {
                    "type": "bounce",
                    "bounce_class": "22" if soft else "10",
                    "transmission_id": message.provider_message_id,
                    "event_id": f"sp-{soft}",
                    "timestamp": "1765000000",
                    "raw_rcpt_to": "ada@example.com",
                    "raw_reason": "452 mailbox full" if soft else "550 5.1.1 no such user",
                }
            }
        }
    ],
}


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_a_providers_soft_bounce_is_recorded_as_deferred_and_its_hard_bounce_suppresses(
    client, team, postmark, provider
):
    message = _sent(team, postmark)
    url = f"/anymail/{provider}/tracking/"
    auth = {"HTTP_AUTHORIZATION": _auth(*POSTMARK_WEBHOOK_AUTH)}
    soft = json.dumps(PROVIDERS[provider](message, True))
    assert client.post(url, soft, content_type="application/json", **auth).status_code == 200
    assert Contact.objects.get(pk=message.contact_id).subscribed
    assert list(EmailActivity.objects.values_list("kind", flat=True)) == ["deferred"]
    hard = json.dumps(PROVIDERS[provider](message, False))
    assert client.post(url, hard, content_type="application/json", **auth).status_code == 200
    contact = Contact.objects.get(pk=message.contact_id)
    assert not contact.subscribed and contact.unsubscribed_by == "bounce"


def test_a_bounce_for_another_reason_than_a_dead_address_suppresses_nobody(client, team, postmark):
    message = _sent(team, postmark)
    assert _post(client, "bounce_hard.json", message, Type="VirusNotification").status_code == 200
    assert Contact.objects.get(pk=message.contact_id).subscribed
    assert EmailActivity.objects.get(message=message).kind == "rejected"
    message.refresh_from_db()
    assert message.bounced_at is None


def test_a_provider_this_installation_has_not_set_up_answers_404_not_500(client, postmark):
    # Mailgun's view needs its signing key, Amazon SES's needs boto3: anymail refuses to build either
    for url in ("/anymail/mailgun/tracking/", "/anymail/amazon_ses/tracking/", "/anymail/mandrill/tracking/"):
        assert client.post(url, "{}", content_type="application/json").status_code == 404


def test_a_body_of_the_wrong_shape_is_a_400(client, postmark):
    auth = {"HTTP_AUTHORIZATION": _auth(*POSTMARK_WEBHOOK_AUTH)}
    for body in ("[]", '"text"'):  # anymail's Brevo view expects an object
        assert client.post("/anymail/brevo/tracking/", body, content_type="application/json", **auth).status_code == 400


def test_the_unsubscribe_link_does_not_lift_a_bounce(client, team, postmark):
    from loops.services.unsubscribing import unsubscribe_url

    message = _sent(team, postmark)
    _post(client, "bounce_hard.json", message)
    contact = Contact.objects.get(pk=message.contact_id)
    url = unsubscribe_url(contact).split("://", 1)[1].split("/", 1)[1]
    page = client.get(f"/{url}").content.decode()
    assert 'data-testid="suppressed"' in page and 'value="resubscribe"' not in page
    response = client.post(f"/{url}", {"action": "resubscribe"})  # a forwarded email's link, or a crafted post
    assert response.status_code == 200 and 'data-testid="suppressed"' in response.content.decode()
    contact.refresh_from_db()
    assert not contact.subscribed and contact.unsubscribed_by == "bounce"


def test_a_rejection_of_a_dead_address_is_a_bounce_on_the_email_and_the_chart(client, team, postmark):
    message = _sent(team, postmark)
    # Postmark's "BadEmailAddress": anymail's rejected, for an invalid address
    assert _post(client, "bounce_hard.json", message, Type="BadEmailAddress", TypeCode=100000).status_code == 200
    [activity] = EmailActivity.objects.filter(message=message)
    assert activity.kind == "bounce"
    assert Contact.objects.get(pk=message.contact_id).unsubscribed_by == "bounce"


def test_an_event_without_an_id_posted_again_is_recorded_once(client, team, postmark):
    message = _sent(team, postmark)  # Postmark's deliveries carry no event id
    assert _post(client, "delivery.json", message).status_code == 200
    assert _post(client, "delivery.json", message).status_code == 200
    assert EmailActivity.objects.filter(message=message, kind="delivered").count() == 1
    later = _post(client, "delivery.json", message, DeliveredAt="2026-12-06T16:31:00Z")  # another delivery event
    assert later.status_code == 200
    assert EmailActivity.objects.filter(message=message, kind="delivered").count() == 2


def test_a_new_address_lifts_a_bounce_but_not_a_complaint(client, team, postmark, logged_in):
    bounced, complained = _sent(team, postmark), _sent(team, postmark, email="bob@example.com")
    _post(client, "bounce_hard.json", bounced)
    _post(client, "spam_complaint.json", complained)
    for message, new_email in ((bounced, "ada@fixed.example.com"), (complained, "bob@other.example.com")):
        form = {"email": new_email, "first_name": "", "last_name": "", "user_group": "", "user_id": ""}
        assert logged_in.post(reverse("contacts:edit", args=[message.contact_id]), form).status_code == 302
    fixed, still = Contact.objects.get(pk=bounced.contact_id), Contact.objects.get(pk=complained.contact_id)
    assert (fixed.email, fixed.subscribed, fixed.unsubscribed_by, fixed.unsubscribe_reason) == (
        "ada@fixed.example.com",
        True,
        "",
        "",
    )
    assert (still.email, still.subscribed, still.unsubscribed_by) == ("bob@other.example.com", False, "complaint")


def test_an_api_update_to_a_new_address_lifts_a_bounce(client, team, postmark):
    message = _sent(team, postmark)
    _post(client, "bounce_hard.json", message)
    contact = Contact.objects.get(pk=message.contact_id)
    contact_upsert(team=team, email="ada@example.com", fields={"first_name": "Ada"})  # the same address: kept
    contact.refresh_from_db()
    assert contact.unsubscribed_by == "bounce"
    Contact.objects.filter(pk=contact.pk).update(user_id="u1")
    contact_upsert(team=team, email="ada@fixed.example.com", user_id="u1")
    contact.refresh_from_db()
    assert (contact.email, contact.subscribed, contact.unsubscribed_by) == ("ada@fixed.example.com", True, "")
