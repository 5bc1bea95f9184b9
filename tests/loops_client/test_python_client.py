"""The PyPI Loops client `loops-sdk` (pinned in requirements-dev.txt) against a live LoopSync.

As test_official_client.py does for the JavaScript client: the team, its key, a mailing list, transactional
emails and an active loop are set up here; the client, with only its `api_root` pointed at the live server,
makes every call it has, exactly as it makes them to Loops — with its defaults too, `"mailingLists": null`
on contacts and `"eventProperties": null` on events; and the database and a real SMTP inbox show what those
calls did. The pipeline behind the server is the real one (the `pipeline` fixture of conftest.py).
"""

import re
from pathlib import Path

import pytest

from api.services import api_key_create
from conftest import service_missing
from contacts.billing import BILLING_PROPERTIES
from contacts.models import Contact, ContactProperty, ListMembership, MailingList
from loops.models import EmailMessage, Event, LoopRun, TransactionalEmail
from tests.test_pipeline import wait_for

pytestmark = [pytest.mark.django_db(transaction=True)]

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements-dev.txt"
ADA = "ada@example.org"  # created, updated, found and deleted
GRACE = "grace@example.org"  # created on a list, updated, sent an event and a transactional email
NEWCOMER = "newcomer@example.org"  # added to the audience by a transactional send
USER_ID = "user_ada_1815"
EVENT_NAME = "planUpgraded"
TRANSACTIONAL_ID = "welcome-abc123"
IDEMPOTENCY_KEY = "upgrade-grace-0001"


@pytest.fixture
def loops_sdk():
    """The pinned client, installed by `make install` from requirements-dev.txt."""
    pinned = re.search(r"^loops-sdk==(\S+)", REQUIREMENTS.read_text(), re.MULTILINE).group(1)
    try:
        import loops_sdk
    except ImportError:
        service_missing(f"needs the PyPI Loops client loops-sdk {pinned}: `make install` installs it")
    if loops_sdk.__version__ != pinned:
        service_missing(f"needs loops-sdk {pinned}, found {loops_sdk.__version__}: `make install` installs it")
    return loops_sdk


def api_error(call, status: int) -> str:
    """Run `call`, which must fail with the client's APIError of this status in Loops' error shape."""
    import loops_sdk

    with pytest.raises(loops_sdk.APIError) as caught:
        call()
    assert caught.value.status_code == status, caught.value.json
    body = caught.value.json
    assert set(body) == {"success", "message"} and body["success"] is False and body["message"]
    return body["message"]


def test_pypi_loops_client_against_the_live_api(loops_sdk, pipeline, live_server, team, other_team, make_loop):
    key = api_key_create(team=team, name="loops-python").key
    newsletter = MailingList.objects.create(
        team=team, name="Newsletter", description="Product news, monthly.", is_public=True
    )
    welcome = TransactionalEmail.objects.create(
        team=team,
        public_id=TRANSACTIONAL_ID,
        name="Welcome",
        subject="Welcome {{ data.name }}",
        body="Hi {{ data.name }}",
        required_variables=["name"],
    )
    for index in range(21):  # 22 transactional emails: three pages of 10
        TransactionalEmail.objects.create(
            team=team, public_id=f"notice-{index:02d}", name=f"Notice {index}", subject="Notice", body="A notice."
        )
    TransactionalEmail.objects.create(team=other_team, public_id="globex-only", name="Globex", subject="x", body="x")
    loop = make_loop(team, "stripe-payment-successful")
    loop.trigger_event_name = EVENT_NAME
    loop.save(update_fields=["trigger_event_name"])

    api_root = f"{live_server.url}/api/"
    loops = loops_sdk.LoopsClient(key, api_root=api_root)
    email = loops_sdk.LoopsEmail

    # The key.
    assert loops.test_api_key() == {"success": True, "teamName": team.name}
    assert api_error(loops_sdk.LoopsClient("ls_not-a-key", api_root=api_root).test_api_key, 401) == "Invalid API key"

    # Contacts, created with the client's default `"mailingLists": null`, and with a list.
    ada = loops.create_contact(ADA, {"firstName": "Ada", "plan": "pro", "seats": 3})
    assert ada["success"] is True and ada["id"]
    grace = loops.create_contact(GRACE, {"firstName": "Grace"}, mailing_lists={str(newsletter.pk): True})
    assert grace["success"] is True
    assert "already on list" in api_error(lambda: loops.create_contact(ADA, {"firstName": "Other"}), 409)

    # Updated, again with `"mailingLists": null` (Grace stays on her list); `null` clears a property.
    answer = loops.update_contact(ADA, {"lastName": "Lovelace", "userId": USER_ID, "plan": "team", "seats": None})
    assert answer == {"success": True, "id": ada["id"]}
    assert loops.update_contact(GRACE, {"lastName": "Hopper"}) == {"success": True, "id": grace["id"]}

    expected = {
        "id": ada["id"], "email": ADA, "firstName": "Ada", "lastName": "Lovelace", "source": "API",
        "subscribed": True, "userGroup": "", "userId": USER_ID, "mailingLists": {}, "optInStatus": None,
        "plan": "team",
    }  # fmt: skip
    [found] = loops.find_contact(email=ADA)
    assert {name: found.get(name) for name in expected} == expected and "seats" not in found
    assert loops.find_contact(user_id=USER_ID) == [found]
    assert loops.find_contact(email="nobody@example.org") == []
    [found_grace] = loops.find_contact(email=GRACE)
    assert (found_grace["lastName"], found_grace["mailingLists"]) == ("Hopper", {str(newsletter.pk): True})

    # Properties and lists.
    assert loops.create_contact_property("planName", "string") == {"success": True}  # built in: Stripe billing
    assert "built-in" in api_error(lambda: loops.create_contact_property("planName", "number"), 409)
    assert loops.create_contact_property("tier", "string") == {"success": True}
    assert "exists already" in api_error(lambda: loops.create_contact_property("tier", "number"), 409)
    custom = {p["key"]: p["type"] for p in loops.get_custom_properties("custom")}
    own = {key: custom.pop(key) for key in ("plan", "tier", "seats")}
    assert own == {"plan": "string", "tier": "string", "seats": "number"} and custom == BILLING_PROPERTIES
    everything = {p["key"]: p["type"] for p in loops.get_custom_properties()}
    assert (everything["email"], everything["subscribed"]) == ("string", "boolean")
    assert custom.items() <= everything.items()
    assert loops.get_mailing_lists() == [
        {"id": str(newsletter.pk), "name": "Newsletter", "description": "Product news, monthly.", "isPublic": True}
    ]

    # Events: with the client's defaults (`"eventProperties": null`, `"mailingLists": null`), and twice with
    # one Idempotency-Key.
    assert loops.send_event(event_name="signedUp", email=GRACE) == {"success": True}
    upgrade = {"amount_formatted": "$42.00", "seats": 5, "annual": True}
    for _ in range(2):
        answer = loops.send_event(
            event_name=EVENT_NAME,
            email=GRACE,
            contact_properties={"userGroup": "admirals"},
            event_properties=upgrade,
            headers={"Idempotency-Key": IDEMPOTENCY_KEY},
        )
        assert answer == {"success": True}
    assert "eventName" in api_error(lambda: loops.send_event(event_name="has spaces", email=GRACE), 400)

    # Transactional email: a missing variable is refused; one to Grace; one that adds a newcomer.
    missing = api_error(
        lambda: loops.send_transactional_email(email(email=GRACE, transactional_id=TRANSACTIONAL_ID)), 400
    )
    assert "dataVariables.name" in missing
    sent = loops.send_transactional_email(
        email(email=GRACE, transactional_id=TRANSACTIONAL_ID, data_variables={"name": "Grace"})
    )
    assert sent == {"success": True}
    sent = loops.send_transactional_email(
        email(email=NEWCOMER, transactional_id=TRANSACTIONAL_ID, add_to_audience=True, data_variables={"name": "Nia"}),
        headers={"Idempotency-Key": "welcome-newcomer-1"},
    )
    assert sent == {"success": True}
    assert api_error(lambda: loops.send_transactional_email(email(email=GRACE, transactional_id="nope")), 404)

    # The list of transactional emails, 20 a page by default, walked 10 at a time to the last page.
    first = loops.get_transactional_emails()
    assert first["pagination"]["perPage"] == 20 and first["pagination"]["returnedResults"] == 20
    pages, cursor = [], None
    while True:
        page = loops.get_transactional_emails(per_page=10, cursor=cursor)
        pages.append(page)
        cursor = page["pagination"]["nextCursor"]
        if cursor is None:
            break
        assert page["pagination"]["nextPage"] == f"{live_server.url}/api/v1/transactional?cursor={cursor}&perPage=10"
    assert [p["pagination"]["returnedResults"] for p in pages] == [10, 10, 2]
    assert {(p["pagination"]["totalResults"], p["pagination"]["totalPages"]) for p in pages} == {(22, 3)}
    assert pages[-1]["pagination"]["nextPage"] is None
    listed = [row for p in pages for row in p["data"]]
    ids = [row["id"] for row in listed]
    assert len(ids) == len(set(ids)) == 22
    assert set(ids) == set(TransactionalEmail.objects.filter(team=team).values_list("public_id", flat=True))
    [listed_welcome] = [row for row in listed if row["id"] == TRANSACTIONAL_ID]
    assert {k: v for k, v in listed_welcome.items() if k != "lastUpdated"} == {
        "id": TRANSACTIONAL_ID, "name": "Welcome", "dataVariables": ["name"],
    }  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", listed_welcome["lastUpdated"])

    # Deleted by userId; then neither way finds it, and deleting again is a 404.
    assert loops.delete_contact(user_id=USER_ID) == {"success": True, "message": "Contact deleted."}
    assert loops.find_contact(email=ADA) == [] and loops.find_contact(user_id=USER_ID) == []
    api_error(lambda: loops.delete_contact(email=ADA), 404)

    # What the calls did.
    assert not Contact.objects.filter(team=team, email__iexact=ADA).exists()
    grace_row = Contact.objects.get(team=team, email=GRACE)
    assert (grace_row.first_name, grace_row.last_name, grace_row.user_group, grace_row.subscribed) == (
        "Grace", "Hopper", "admirals", True,
    )  # fmt: skip
    assert ListMembership.objects.filter(contact=grace_row, mailing_list=newsletter).exists()
    newcomer = Contact.objects.get(team=team, email=NEWCOMER)
    assert newcomer.source == "API"
    assert dict(ContactProperty.objects.filter(team=team).values_list("key", "type")) == own

    events = {e.name: e for e in Event.objects.filter(team=team)}
    assert set(events) == {"signedUp", EVENT_NAME}  # one event for the two sends with one Idempotency-Key
    assert events["signedUp"].properties == {} and events["signedUp"].contact_id == grace_row.pk
    assert (events[EVENT_NAME].properties, events[EVENT_NAME].contact_id) == (upgrade, grace_row.pk)
    [run] = LoopRun.objects.filter(loop=loop)
    assert (run.contact_id, run.event_id) == (grace_row.pk, events[EVENT_NAME].pk)

    # Three emails, all delivered to the SMTP server: the loop's and two welcomes.
    wait_for(lambda: EmailMessage.objects.filter(team=team, status=EmailMessage.Status.SENT).count() == 3)
    assert EmailMessage.objects.filter(run=run).get().subject == "Thanks for your payment of $42.00"
    welcomes = {m.to_email: m for m in EmailMessage.objects.filter(transactional=welcome)}
    assert {to: (m.subject, m.contact_id) for to, m in welcomes.items()} == {
        GRACE: ("Welcome Grace", grace_row.pk),
        NEWCOMER: ("Welcome Nia", newcomer.pk),
    }
    wait_for(lambda: len(pipeline.messages) == 3)
    received = {(m["X-Envelope-To"], m["Subject"]): m for m in pipeline.messages}
    assert set(received) == {
        (GRACE, "Thanks for your payment of $42.00"),
        (GRACE, "Welcome Grace"),
        (NEWCOMER, "Welcome Nia"),
    }
    assert "Hi Nia" in received[(NEWCOMER, "Welcome Nia")].get_body(preferencelist=("plain",)).get_content()
