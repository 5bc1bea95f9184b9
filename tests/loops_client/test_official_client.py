"""The official Loops JavaScript client (npm `loops`, pinned in package.json) against a live LoopSync.

The team, its API key, a mailing list, a transactional email, an active loop and an unsubscribed contact
are set up here; `run.mjs` then drives the client with only its public `apiRoot` pointed at the live
server, asserting every answer's shape; and this test checks in the database (and in a real SMTP inbox)
what those calls did. The pipeline behind the server is the real one, as in tests/browser: tasks in-process
without a broker, the session's Celery worker on Redis when one is configured (CI) (the `pipeline` fixture
of conftest.py, shared with the PyPI client's test, test_python_client.py).

`make test` installs the client (`npm ci` in this folder); without Node 18+ and npm the test is skipped,
or fails under LOOPSYNC_REQUIRE_SERVICES=1.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from api.models import SuppressionRemoval
from api.services import api_key_create
from conftest import service_missing
from contacts.models import Contact, MailingList
from contacts.services import contact_upsert
from loops.models import EmailMessage, Event, LoopRun, TransactionalEmail
from tests.test_pipeline import wait_for

pytestmark = [pytest.mark.django_db(transaction=True)]

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "run.mjs"
EVENT_NAME = "planUpgraded"
SUPPRESSED_EMAIL = "grace@example.org"
DELETED_EMAIL = "ada@example.org"  # created, updated and deleted by run.mjs
TRANSACTIONAL_ID = "welcome-abc123"
IDEMPOTENCY_KEY = "upgrade-grace-0001"
INSTALL_HINT = "`make test` installs it with `npm ci --prefix tests/loops_client`"


@pytest.fixture
def node():
    """Node 18+ and the pinned client, installed from package-lock.json."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        service_missing(f"needs node and npm (Node.js 18+) for the official Loops client; {INSTALL_HINT}")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    major = int(version.lstrip("v").split(".")[0])
    if major < 18:
        service_missing(f"needs Node.js 18 or newer (fetch), found {version}")
    pinned = json.loads((HERE / "package.json").read_text())["dependencies"]["loops"]
    installed = HERE / "node_modules" / "loops" / "package.json"
    if not installed.exists() or json.loads(installed.read_text())["version"] != pinned:
        service_missing(f"needs node and npm: the `loops` client {pinned} is not installed; {INSTALL_HINT}")
    return node, pinned


def test_official_loops_client_against_the_live_api(node, pipeline, live_server, team, make_loop):
    node_bin, pinned = node
    key = api_key_create(team=team, name="loops-js").key
    mailing_list = MailingList.objects.create(
        team=team, name="Newsletter", description="Product news, monthly.", is_public=True
    )
    transactional = TransactionalEmail.objects.create(
        team=team,
        public_id=TRANSACTIONAL_ID,
        name="Welcome",
        subject="Welcome {{ data.name }}",
        body="Hi {{ data.name }}",
        required_variables=["name"],
    )
    loop = make_loop(team, "stripe-payment-successful")
    loop.trigger_event_name = EVENT_NAME
    loop.save(update_fields=["trigger_event_name"])
    grace, _ = contact_upsert(team=team, email=SUPPRESSED_EMAIL, fields={"first_name": "Grace", "subscribed": False})

    result = subprocess.run(
        [node_bin, str(SCRIPT)],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "LOOPS_API_KEY": key,
            "LOOPS_API_ROOT": f"{live_server.url}/api/",
            "LOOPSYNC_TEAM_NAME": team.name,
            "LOOPSYNC_LIST_ID": str(mailing_list.pk),
            "LOOPSYNC_LIST_NAME": mailing_list.name,
            "LOOPSYNC_SUPPRESSED_EMAIL": SUPPRESSED_EMAIL,
            "LOOPSYNC_TRANSACTIONAL_ID": TRANSACTIONAL_ID,
            "LOOPSYNC_EVENT_NAME": EVENT_NAME,
            "LOOPSYNC_IDEMPOTENCY_KEY": IDEMPOTENCY_KEY,
        },
    )
    output = f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert result.returncode == 0, output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["ok"] is True, output
    assert summary["client"] == f"loops@{pinned}"
    assert len(summary["steps"]) == 25, output  # every step of run.mjs ran

    # Created, updated, found, then deleted.
    assert not Contact.objects.filter(team=team, email__iexact=DELETED_EMAIL).exists()
    # Resubscribed through DELETE contacts/suppression, and updated by the event's contact properties.
    grace.refresh_from_db()
    assert (grace.subscribed, grace.first_name, grace.last_name) == (True, "Grace", "Hopper")
    assert SuppressionRemoval.objects.filter(team=team, contact_id=grace.pk).count() == 1

    # The event was sent twice with one Idempotency-Key: one event, one run of the active loop.
    [event] = Event.objects.filter(team=team, name=EVENT_NAME)
    assert (event.contact_id, event.source) == (grace.pk, "API")
    assert event.properties == {"amount_formatted": "$42.00", "seats": 5, "annual": True}
    [run] = LoopRun.objects.filter(loop=loop)
    assert (run.contact_id, run.event_id) == (grace.pk, event.pk)

    # Two emails, both delivered to the SMTP server: the loop's (Grace is subscribed again, so it is
    # sent, not skipped) and the transactional one (the request missing `name` queued nothing).
    wait_for(lambda: EmailMessage.objects.filter(team=team, status=EmailMessage.Status.SENT).count() == 2)
    [loop_email] = EmailMessage.objects.filter(run=run)
    assert loop_email.subject == "Thanks for your payment of $42.00"
    [welcome] = EmailMessage.objects.filter(transactional=transactional)
    assert (welcome.to_email, welcome.contact_id, welcome.subject) == (SUPPRESSED_EMAIL, grace.pk, "Welcome Grace")
    assert "Hi Grace" in welcome.text_body
    wait_for(lambda: len(pipeline.messages) == 2)
    received = {message["Subject"]: message for message in pipeline.messages}
    assert set(received) == {"Thanks for your payment of $42.00", "Welcome Grace"}
    assert {message["X-Envelope-To"] for message in received.values()} == {SUPPRESSED_EMAIL}
    assert "Hi Grace" in received["Welcome Grace"].get_body(preferencelist=("plain",)).get_content()
