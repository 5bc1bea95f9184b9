"""A render limit on the real paths: refused when saved, shown in place in the editors' preview, failing
one run or email at send time while the rest of the batch goes out, and a 400 from the API."""

import html
import json
import time
from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from api.services import api_key_create
from conftest import main_line
from contacts.models import Contact
from loops import rendering
from loops.models import EmailMessage, Loop, LoopRun, LoopStep, TransactionalEmail
from loops.render_limits import check_timeout_message, render_deadline
from loops.services import event_fire, loop_activate
from loops.services.runs import RENDER_RETRIES, RENDER_TIMED_OUT, runs_drain
from loops.services.sending import emails_drain

pytestmark = pytest.mark.django_db

BIG_LOOP = "Hi {% for i in (1..100000000) %}{% endfor %}"
LOOP_LIMIT = "The body stopped rendering on line 1: loops are limited to 10,000 iterations (LIQUID_LOOP_LIMIT)"
# Fine with the sample contact (it has no `n`), too much for a contact whose `n` is 10^9.
PER_CONTACT = "Hi {{ contact.first_name }}: {% for i in (1..contact.properties.n) %}*{% endfor %}"

EMAIL = {
    "kind": "email",
    "subject": "Hi {{ contact.first_name }}",
    "preview_text": "",
    "body": "Hello",
    "from_name": "",
    "from_email": "",
    "reply_to": "",
}
TRANSACTIONAL = {
    "name": "Receipt",
    "subject": "Your receipt",
    "preview_text": "",
    "body": "Thanks",
    "from_name": "",
    "from_email": "",
    "reply_to": "",
    "required_variables": "",
}


@pytest.fixture
def draft(team, make_loop):
    return make_loop(team, activate=False)


def person(team, email: str, **properties) -> Contact:
    return Contact.objects.create(team=team, email=email, first_name=email.split("@")[0].title(), properties=properties)


def shown(response) -> str:
    assert response.status_code in (200, 400)
    return html.unescape(response.content.decode())


# --- the loop editor -----------------------------------------------------------------------------


def test_the_preview_shows_the_limit_in_place(logged_in, draft):
    # The issue's: two of these previews held both gunicorn workers until they were killed.
    response = logged_in.post(reverse("loops:step-preview", args=[draft.pk]), {**EMAIL, "body": BIG_LOOP})
    assert response.status_code == 200
    body = shown(response)
    assert "The preview cannot render" in body and LOOP_LIMIT in body


def test_a_step_over_a_limit_is_refused_on_save_with_the_message(logged_in, draft):
    added = logged_in.post(reverse("loops:step-new", args=[draft.pk]), {**EMAIL, "body": BIG_LOOP})
    assert added.status_code == 400
    assert LOOP_LIMIT in shown(added) and "Nothing was saved" in shown(added)
    assert draft.steps.count() == 3
    step = main_line(draft)[0]
    edited = logged_in.post(reverse("loops:step", args=[draft.pk, step.pk]), {**EMAIL, "body": BIG_LOOP})
    assert edited.status_code == 400 and LOOP_LIMIT in shown(edited)
    step.refresh_from_db()
    assert "100000000" not in step.body


def test_the_preview_for_a_contact_whose_values_go_over_a_limit_says_so(logged_in, team, draft):
    person(team, "big@example.com", n=10**9)
    person(team, "small@example.com", n=3)
    form = {**EMAIL, "body": PER_CONTACT}
    big = logged_in.post(reverse("loops:step-preview", args=[draft.pk]), {**form, "preview_email": "big@example.com"})
    assert big.status_code == 200 and LOOP_LIMIT in shown(big)
    small = logged_in.post(
        reverse("loops:step-preview", args=[draft.pk]), {**form, "preview_email": "small@example.com"}
    )
    assert "Hi Small: ***" in shown(small)


def test_a_test_email_for_such_a_contact_sends_nothing_and_says_why(logged_in, team, draft, smtp_server):
    person(team, "big@example.com", n=10**9)
    response = logged_in.post(
        reverse("loops:step-test", args=[draft.pk]),
        {**EMAIL, "body": PER_CONTACT, "preview_email": "big@example.com"},
        HTTP_HX_REQUEST="true",
    )
    assert f"Nothing was sent: {LOOP_LIMIT}" in shown(response)
    assert smtp_server.messages == []


HTML_LIMIT = "The body is too big as HTML: an email's HTML is limited to 1,048,576 bytes (EMAIL_HTML_LIMIT)"
# 62 characters that made a 6.75 MB email: Markdown nests a quote for every `>`.
QUOTES = "{% for i in (1..10000) %}>>>>>>>>>>>>>>>>>>>>>>>>>{% endfor %}"


def test_a_body_too_big_as_html_is_refused_on_save_and_shown_in_the_preview(logged_in, draft):
    added = logged_in.post(reverse("loops:step-new", args=[draft.pk]), {**EMAIL, "body": QUOTES})
    assert added.status_code == 400 and HTML_LIMIT in shown(added)
    assert draft.steps.count() == 3
    preview = logged_in.post(reverse("loops:step-preview", args=[draft.pk]), {**EMAIL, "body": QUOTES})
    assert HTML_LIMIT in shown(preview)
    assert len(preview.content) < 100_000  # the message, not megabytes of quotes


def test_saving_a_step_checks_its_templates_once(logged_in, draft, monkeypatch):
    """The form's validation and the service's both check the step: the second costs nothing."""
    checked = []
    real = rendering._check
    monkeypatch.setattr(
        rendering, "_check", lambda field, source, **kw: (checked.append(field), real(field, source, **kw))
    )
    body = "Hi {{ contact.first_name }}, a body no other test saves"
    added = logged_in.post(reverse("loops:step-new", args=[draft.pk]), {**EMAIL, "body": body})
    assert added.status_code == 302 and draft.steps.filter(body=body).exists()
    assert checked.count("body") == 1


def _check_cost(body: str) -> float:
    """What checking `body` costs on this machine, in the CPU time a render's budget counts."""
    costs = []
    for _ in range(5):  # the least of five: a garbage collection or a busy neighbour only adds
        with render_deadline(checking=True):  # LIQUID_RENDER_TIMEOUT is high here: this only measures
            started = time.thread_time()
            rendering._check("body", body, markdown=True)
            costs.append(time.thread_time() - started)
    return min(costs)


@pytest.mark.parametrize("budget", [1.5, 4])  # LIQUID_RENDER_TIMEOUT, in times what checking the body costs
def test_the_preview_allows_what_a_save_allows(logged_in, draft, settings, budget):
    """The preview checks the template and then renders it, each within the budget a save's check and a
    send have. It did both within one budget: a template that saved and sent never previewed."""
    body = "Hi {{ contact.first_name }} {% for i in (1..3000) %}{% cycle " + ", ".join(["'a'"] * 40) + " %}{% endfor %}"
    settings.LIQUID_RENDER_TIMEOUT = 60
    settings.LIQUID_RENDER_TIMEOUT = budget * _check_cost(body)
    saved = logged_in.post(reverse("loops:step-new", args=[draft.pk]), {**EMAIL, "body": body})
    preview = logged_in.post(reverse("loops:step-preview", args=[draft.pk]), {**EMAIL, "body": body})
    if saved.status_code == 302:  # what saves, previews: the bug this guards against
        assert "The preview cannot render" not in shown(preview) and "<iframe" in shown(preview)
    else:  # at 1.5 times its cost the check may run out on a busy machine, for the save or the preview alone
        refused = f"The body stopped rendering on line 1: {check_timeout_message()}"
        assert refused in shown(saved)
        assert refused in shown(preview) or "<iframe" in shown(preview)
    if budget == 4:  # twice what the check needs: saved (and so previewed)
        assert saved.status_code == 302


def test_pathological_bodies_preview_as_email(logged_in, draft):
    for body in ("[" * 8000, "![" * 4000, "{{ contact.first_name }}" + "*a **b " * 2000):
        response = logged_in.post(reverse("loops:step-preview", args=[draft.pk]), {**EMAIL, "body": body})
        assert response.status_code == 200
        assert "The preview cannot render" not in shown(response) and "<iframe" in shown(response)


# --- transactional emails ------------------------------------------------------------------------


def test_a_transactional_email_over_a_limit_is_refused_on_save(logged_in):
    response = logged_in.post(reverse("loops:transactional-new"), {**TRANSACTIONAL, "body": BIG_LOOP})
    assert response.status_code == 400 and LOOP_LIMIT in shown(response)
    assert not TransactionalEmail.objects.exists()


@pytest.mark.parametrize("char", ["[", "*", "<", "&"])
def test_a_data_variable_as_long_as_the_api_allows_previews_as_email(logged_in, char):
    # A 50 KB one took 10 to 25 s before: the text part's regexes ran over the unescaped value.
    response = logged_in.post(
        reverse("loops:transactional-preview"),
        {**TRANSACTIONAL, "body": "Note: {{ data.note }}", "preview_data": json.dumps({"note": char * 10_000})},
    )
    assert response.status_code == 200
    assert "The preview cannot render" not in shown(response) and "<iframe" in shown(response)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {f"v{i}": "x" for i in range(101)},
            "At most 100 data variables in one request (DATA_VARIABLES_PER_REQUEST); this one has 101.",
        ),
        ({"note": "x" * 10_001}, "note: A value is at most 10,000 characters (DATA_VARIABLE_MAX_CHARS)."),
        ({"items": [{"name": "x" * 10_001}]}, "items[0].name: A value is at most 10,000 characters"),
    ],
)
def test_preview_data_over_the_apis_caps_is_refused_with_the_apis_message(logged_in, data, message):
    response = logged_in.post(
        reverse("loops:transactional-preview"),
        {**TRANSACTIONAL, "body": "Note: {{ data.note }}", "preview_data": json.dumps(data)},
    )
    assert response.status_code == 200
    assert f"The preview data is over the API's caps: {message}" in shown(response)


def test_preview_data_longer_than_an_api_request_is_refused(logged_in):
    data = json.dumps({"items": [0] * 600_000})  # 1.8 MB of numbers: no string over the cap
    response = logged_in.post(reverse("loops:transactional-preview"), {**TRANSACTIONAL, "preview_data": data})
    assert response.status_code == 200
    assert "The preview data is longer than an API request may be: 1,048,576 bytes (API_MAX_BODY_BYTES)." in shown(
        response
    )


def test_the_transactional_preview_shows_a_limit_its_data_hits(logged_in):
    response = logged_in.post(
        reverse("loops:transactional-preview"),
        {
            **TRANSACTIONAL,
            "body": "{% for i in (1..data.n) %}x{% endfor %}",
            "preview_data": '{"n": 1000000000}',
        },
    )
    assert response.status_code == 200 and LOOP_LIMIT in shown(response)


def test_preview_data_nested_too_deep_is_a_message_not_a_500(logged_in):
    deep = "[" * 100_000 + "]" * 100_000
    response = logged_in.post(reverse("loops:transactional-preview"), {**TRANSACTIONAL, "preview_data": deep})
    assert response.status_code == 200 and "The preview data is not a JSON object." in shown(response)


# --- at send time --------------------------------------------------------------------------------


def _loop_with(team, body: str) -> Loop:
    loop = Loop.objects.create(team=team, name="Welcome", trigger_event_name="signedUp")
    LoopStep.objects.create(team=team, loop=loop, kind="email", subject="Hi {{ contact.first_name }}",
                            body=body)  # fmt: skip
    return loop_activate(loop=loop)  # passes the save check: the sample contact has no `n`


def _enrol(team, email: str, **properties) -> None:
    event_fire(team=team, contact=person(team, email, **properties), name="signedUp", idempotency_key=email)


def test_a_run_over_a_limit_fails_with_the_message_and_the_rest_of_the_batch_is_sent(team, other_team, smtp_server):
    _loop_with(team, PER_CONTACT)
    _loop_with(other_team, PER_CONTACT)
    _enrol(team, "big@example.com", n=10**9)
    _enrol(team, "grace@example.com", n=3)
    _enrol(other_team, "globex@example.com", n=2)
    assert runs_drain() == 3  # one batch: the big contact's run, then the others
    failed = LoopRun.objects.get(contact__email="big@example.com")
    assert (failed.status, failed.last_error) == ("failed", LOOP_LIMIT)
    assert not EmailMessage.objects.filter(contact__email="big@example.com").exists()
    assert set(LoopRun.objects.exclude(pk=failed.pk).values_list("status", flat=True)) == {"completed"}
    emails_drain()
    sent = {m["To"]: m.get_body(preferencelist=("plain",)).get_content() for m in smtp_server.messages}
    assert set(sent) == {"grace@example.com", "globex@example.com"}
    assert sent["grace@example.com"].startswith("Hi Grace: ***")


# 10,000 iterations of 40 filters for contacts marked slow: seconds of work on any machine.
SLOW_FOR_SOME = (
    "Hi {{ contact.first_name }}{% if contact.properties.slow %}{% for i in (1..10000) %}{% assign x = 'a'"
    + " | append: 'b'" * 40
    + " %}{% endfor %}{% endif %}"
)
TIMED_OUT = "The body stopped rendering on line 1: rendering is limited to 0.05 s (LIQUID_RENDER_TIMEOUT)"


def test_a_run_out_of_time_is_tried_again_later_without_stalling_the_batch(team, settings, smtp_server):
    """Time is the one limit a busy machine can make a template miss: the run is tried again, with a
    backoff, and fails with the message only after RENDER_RETRIES more tries."""
    _loop_with(team, SLOW_FOR_SOME)
    settings.LIQUID_RENDER_TIMEOUT = 0.05
    _enrol(team, "slow@example.com", slow=True)
    _enrol(team, "quick@example.com")
    runs_drain()
    emails_drain()
    assert [m["To"] for m in smtp_server.messages] == ["quick@example.com"]
    run = LoopRun.objects.get(contact__email="slow@example.com")
    later = timezone.now()
    for attempt in range(RENDER_RETRIES):
        assert run.status == "active" and run.last_error == TIMED_OUT
        assert [entry["what"] for entry in run.history[-attempt - 1 :]] == [RENDER_TIMED_OUT] * (attempt + 1)
        assert run.next_due_at >= later + timedelta(minutes=2**attempt) - timedelta(seconds=5)  # 1, 2, 4 minutes
        later = run.next_due_at
        with time_machine.travel(later + timedelta(seconds=1)):
            assert runs_drain() == 1
        run.refresh_from_db()
    assert (run.status, run.last_error) == ("failed", f"{TIMED_OUT} (tried {RENDER_RETRIES + 1} times)")
    assert not EmailMessage.objects.filter(to_email="slow@example.com").exists()


def test_a_run_out_of_time_once_is_sent_on_its_next_try(team, settings, smtp_server):
    _loop_with(team, SLOW_FOR_SOME)
    settings.LIQUID_RENDER_TIMEOUT = 0.05
    _enrol(team, "slow@example.com", slow=True)
    runs_drain()
    assert LoopRun.objects.get().status == "active"
    settings.LIQUID_RENDER_TIMEOUT = 60  # the machine is not busy any more
    with time_machine.travel(timezone.now() + timedelta(minutes=2)):
        runs_drain()
        emails_drain()
    assert LoopRun.objects.get().status == "completed"
    assert [m["To"] for m in smtp_server.messages] == ["slow@example.com"]


def test_a_run_whose_email_is_too_big_as_html_fails_with_the_message(team, smtp_server):
    _loop_with(team, "{% for i in (1..contact.properties.n) %}>>>>>>>>>>>>>>>>>>>>>>>>>{% endfor %}")
    _enrol(team, "quotes@example.com", n=10_000)
    _enrol(team, "grace@example.com", n=2)
    runs_drain()
    failed = LoopRun.objects.get(contact__email="quotes@example.com")
    assert (failed.status, failed.last_error) == ("failed", HTML_LIMIT)
    emails_drain()
    assert [m["To"] for m in smtp_server.messages] == ["grace@example.com"]


def test_the_api_answers_400_naming_the_limit_and_the_failed_email_is_recorded(team, smtp_server):
    TransactionalEmail.objects.create(
        team=team, public_id="receipt-1", name="Receipt", subject="Receipt",
        body="{% for i in (1..data.n) %}x{% endfor %}",
    )  # fmt: skip
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(team=team, name='t').key}")

    def send(n):
        payload = {"transactionalId": "receipt-1", "email": "sam@example.com", "dataVariables": {"n": n}}
        return api.post("/api/v1/transactional", payload, format="json")

    refused = send(10**9)
    assert refused.status_code == 400 and refused.json()["success"] is False
    assert LOOP_LIMIT in refused.json()["message"]
    failed = EmailMessage.objects.get()
    assert (failed.status, failed.error, failed.to_email) == ("failed", LOOP_LIMIT, "sam@example.com")
    assert send(3).status_code == 200
    emails_drain()
    assert [m["To"] for m in smtp_server.messages] == ["sam@example.com"]
