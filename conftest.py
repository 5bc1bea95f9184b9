"""Shared test fixtures: teams and users, Stripe fixtures signed for real, and the real services.

Tests that need PostgreSQL or Redis skip when those are unreachable, except when
LOOPSYNC_REQUIRE_SERVICES=1 (CI), where an unreachable service fails the test instead.
"""

import json
import os
import socket
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
import stripe
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.handlers.wsgi import WSGIRequest
from django.db import connection
from django.http import HttpResponse
from django.test.client import Client, ClientHandler

from accounts.models import Membership
from accounts.services import membership_add, team_create
from webhooks.services import endpoint_create

FIXTURES = Path(__file__).parent / "tests" / "fixtures" / "stripe"
SECRET = "whsec_test_secret_for_loopsync"
REQUIRE_SERVICES = os.environ.get("LOOPSYNC_REQUIRE_SERVICES", "").lower() in {"1", "true", "yes"}


def service_missing(message: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} (LOOPSYNC_REQUIRE_SERVICES is set, so this is a failure, not a skip)")
    pytest.skip(message)


# One real-shaped fixture per supported Stripe type (their sources: tests/fixtures/stripe/README.md).
FIXTURE_OF_TYPE = {
    "checkout.session.completed": "stripe-ruby-mock/checkout.session.completed.json",
    "checkout.session.async_payment_succeeded": "openapi/checkout.session.async_payment_succeeded.json",
    "checkout.session.async_payment_failed": "openapi/checkout.session.async_payment_failed.json",
    "customer.created": "dj-stripe/customer.created.with_name.json",
    "customer.updated": "pay/customer.updated.json",
    "customer.deleted": "dj-stripe/customer.deleted.email_only.json",
    "customer.subscription.created": "stripe-ruby-mock/customer.subscription.created.json",
    "customer.subscription.updated": "pay/customer.subscription.updated.json",
    "customer.subscription.deleted": "stripe-ruby-mock/customer.subscription.deleted.json",
    "customer.subscription.paused": "derived/customer.subscription.paused.json",
    "customer.subscription.resumed": "openapi/customer.subscription.resumed.json",
    "customer.subscription.trial_will_end": "stripe-ruby-mock/customer.subscription.trial_will_end.json",
    "invoice.paid": "pay/invoice.paid.json",
    "invoice.payment_failed": "pay/invoice.payment_failed.json",
    "invoice.payment_action_required": "stripe-ruby-mock/invoice.payment_action_required.json",
    "invoice.upcoming": "pay/invoice.upcoming.json",
    "charge.refunded": "pay/charge.refunded.json",
    "charge.dispute.created": "stripe-ruby-mock/charge.dispute.created.json",
    "charge.dispute.closed": "stripe-ruby-mock/charge.dispute.closed.json",
    "quote.finalized": "stripe-ruby-mock/quote.finalized.json",
    "quote.accepted": "stripe-ruby-mock/quote.accepted.json",
    "quote.canceled": "stripe-ruby-mock/quote.canceled.json",
}
# The types beyond the first six (checkout completed, customer created/updated, invoice paid/failed/upcoming).
FIRST_SIX = {"checkout.session.completed", "customer.created", "customer.updated", "invoice.paid",
             "invoice.payment_failed", "invoice.upcoming"}  # fmt: skip
LIFECYCLE_TYPES = sorted(set(FIXTURE_OF_TYPE) - FIRST_SIX)


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text()


def fixture_json(name: str) -> dict:
    return json.loads(fixture_text(name))


def sign(body: str, secret: str = SECRET, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=timestamp)


@pytest.fixture(autouse=True)
def _wakes_sent_by_the_end_of_each_test(settings):  # torn down before `settings` restores them
    """A wake-up this process gathered (work.wake_soon) is sent before the next test starts, under the settings
    of the test that asked for it."""
    yield
    from loopsync import work

    work.wakes_flush()


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def team(db):
    return team_create(name="Acme")


@pytest.fixture
def other_team(db):
    return team_create(name="Globex")


@pytest.fixture
def user(team):
    user = get_user_model().objects.create_user("owner", "owner@acme.test", "pw-owner-123")
    membership_add(team=team, user=user, role=Membership.Role.OWNER)
    return user


@pytest.fixture
def logged_in(client, user):
    """The test client, logged in as the owner of `team`."""
    client.force_login(user)
    return client


@pytest.fixture
def member(team):
    """A plain member of `team`: sees everything, changes no setting (healthchecks' read-only "bob")."""
    user = get_user_model().objects.create_user("member", "member@acme.test")  # no password: force_login, no hashing
    membership_add(team=team, user=user, role=Membership.Role.MEMBER)
    return user


@pytest.fixture
def team_admin(team):
    """An admin of `team`: changes its settings, but not roles (pytest-django's `admin_user` is a superuser)."""
    user = get_user_model().objects.create_user("teamadmin", "admin@acme.test")
    membership_add(team=team, user=user, role=Membership.Role.ADMIN)
    return user


@pytest.fixture
def as_member(client, member):
    """The test client, logged in as a plain member of `team`."""
    client.force_login(member)
    return client


@pytest.fixture
def as_admin(client, team_admin):
    """The test client, logged in as an admin of `team`."""
    client.force_login(team_admin)
    return client


@pytest.fixture
def superuser_client(client):
    """Logged in to the Django admin."""
    admin = get_user_model().objects.create_superuser("root", "root@example.org", "pw-root-123456")
    client.force_login(admin)
    return client


@pytest.fixture
def outsider(other_team):
    user = get_user_model().objects.create_user("outsider", "outsider@globex.test", "pw-outsider-123")
    membership_add(team=other_team, user=user, role=Membership.Role.OWNER)
    return user


@pytest.fixture
def make_endpoint():
    def make(team, **kwargs):
        kwargs.setdefault("secret", SECRET)
        return endpoint_create(team=team, **kwargs)

    return make


@pytest.fixture
def run_tasks(django_capture_on_commit_callbacks):
    """Run what would go to the worker right away, in this process, as `make run` does."""
    from loopsync.celery import app as celery_app

    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True

    def run(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    yield run
    celery_app.conf.task_always_eager = eager


def chain_steps(loop, *steps):
    """Save unsaved LoopSteps as the loop's main line, each after the one before (a test's loop)."""
    parent = None
    for step in steps:
        step.team_id, step.loop, step.parent, step.port = loop.team_id, loop, parent, 0
        step.save()
        parent = step
    return list(steps)


def builder_post(prefix: str, tree: dict) -> dict[str, str]:
    """A condition tree as the filter builder's form posts it at `prefix` (contacts.builder)."""
    data = {f"{prefix}-match": tree.get("match", "all")}
    for number, rule in enumerate(tree.get("rules", [])):
        at = f"{prefix}-{number}"
        if "rules" in rule:
            data.update(builder_post(at, rule))
        else:
            data.update({f"{at}-{key}": str(rule.get(key, "")) for key in ("field", "op", "value", "value2")})
    return data


def paths_post(paths: list[dict]) -> dict[str, str]:
    """A branch's paths (name, conditions) or an experiment's variants (name, percent, control) as the step form
    posts them."""
    data: dict[str, str] = {}
    for port, path in enumerate(paths):
        data[f"path-{port}-name"] = path["name"]
        if "percent" in path:
            data[f"path-{port}-percent"] = str(path["percent"])
            if path.get("control"):
                data["control"] = str(port)
        else:
            data.update(builder_post(f"path-{port}-c", path.get("conditions") or {}))
    return data


def main_line(loop):
    """The loop's steps from the root along port 0."""
    from loops.services import tree_load

    tree = tree_load(loop)
    return tree.chain_from(tree.root)


@pytest.fixture
def endpoint(team, make_endpoint):
    return make_endpoint(team, triggers={"invoice.payment_failed": "failedPayment"})


def livemode(body: str, live: bool = True) -> str:
    """A fixture's event as Stripe would send it in the other mode: most fixtures are test-mode events
    (`livemode: false`), which a live endpoint ignores."""
    payload = json.loads(body)
    payload["livemode"] = live
    return json.dumps(payload)


class ProductionHandler(ClientHandler):
    """Django's test handler behind the production WSGI application's webhook path (webhooks/wsgi.py): a POST
    to a receive URL is answered by `StripeWebhooks`, as gunicorn serves it; the rest goes to Django."""

    def __call__(self, environ):
        from webhooks.wsgi import StripeWebhooks

        passed: list[bool] = []
        answered: dict = {}

        def django(env, start_response):
            passed.append(True)
            return []

        def start_response(status, headers, exc_info=None):
            answered.update(status=int(status.split()[0]), headers=headers)

        body = b"".join(StripeWebhooks(django)(environ, start_response))
        if passed:
            return super().__call__(environ)
        response = HttpResponse(body, status=answered["status"])
        for name, value in answered["headers"]:
            response[name] = value
        response.wsgi_request = WSGIRequest(environ)
        return response


class ProductionClient(Client):
    def __init__(self, **defaults):
        super().__init__(**defaults)
        self.handler = ProductionHandler(enforce_csrf_checks=False)


@pytest.fixture
def client():
    """The test client, with webhooks answered by the WSGI fast path as in production (ProductionHandler)."""
    return ProductionClient()


@pytest.fixture
def django_view_client():
    """Django's own test client: webhooks reach the view (webhooks.views.stripe_receive), as under ASGI."""
    return Client()


@pytest.fixture
def post_webhook(client):
    """POST a body to an endpoint as Stripe would, signed for real unless a signature is given."""

    def post(endpoint, body: str | bytes, signature: str | None = "sign", secret: str = SECRET, slash: bool = True):
        text = body.decode() if isinstance(body, bytes) else body
        headers = {}
        if signature == "sign":
            headers["HTTP_STRIPE_SIGNATURE"] = sign(text, secret)
        elif signature is not None:
            headers["HTTP_STRIPE_SIGNATURE"] = signature
        path = endpoint.get_receive_path() if hasattr(endpoint, "get_receive_path") else endpoint
        if not slash:
            path = path.rstrip("/")
        return client.post(path, data=body, content_type="application/json", **headers)

    return post


@pytest.fixture
def postgres(db):
    if connection.vendor != "postgresql":
        service_missing("needs PostgreSQL: set DATABASE_URL=postgres://…")


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_broker():
    url = os.environ.get("CELERY_BROKER_URL", "")
    if not url.startswith("redis"):
        service_missing("needs Redis: set CELERY_BROKER_URL=redis://…")
    if not _reachable(url):
        service_missing(f"Redis at {url} is not reachable")
    return url


@pytest.fixture(scope="session")
def celery_worker(redis_broker, django_db_setup, django_db_blocker):
    """A real Celery worker, consuming from Redis in a thread, on a queue of this test run only."""
    from celery.contrib.testing.worker import start_worker

    from loopsync.celery import app

    assert settings.CELERY_TASK_ALWAYS_EAGER is False
    # Close the worker thread's connection after each task, so the test database can be dropped.
    app.conf["CELERY_DB_REUSE_MAX"] = None
    # It consumes this run's queue by name: left to itself it would consume every queue of the app's queue map,
    # which Celery builds on the first publish and keeps, so after a test under `tasks_published` published
    # first, that map held only "<queue>-unconsumed" and the worker never saw a wake-up of the tests using it.
    with (
        django_db_blocker.unblock(),
        start_worker(
            app, pool="solo", concurrency=1, perform_ping_check=False, loglevel="WARNING", queues=[TEST_QUEUE]
        ) as worker,
    ):
        yield worker


# Browser tests, the official clients against a live server, and the schema fuzzer: minutes, not seconds.
SLOW_PATHS = ("tests/browser/", "tests/loops_client/", "api/tests/test_schema_fuzz.py", "tests/test_broker_outage.py")


def pytest_collection_modifyitems(config, items):
    root = Path(str(config.rootpath))
    for item in items:
        if Path(str(item.path)).relative_to(root).as_posix().startswith(SLOW_PATHS):
            item.add_marker(pytest.mark.slow)


# Every test run publishes to its own queue, so a developer's worker on the same Redis never picks up test
# messages, and leftovers of one run never reach the next.
TEST_QUEUE = f"loopsync-test-{uuid.uuid4().hex[:8]}"


def pytest_configure(config):
    from loopsync.celery import app

    app.conf.task_default_queue = app.conf.task_default_routing_key = TEST_QUEUE


def pytest_unconfigure(config):
    from loopsync.celery import app

    if settings.CELERY_TASK_ALWAYS_EAGER:
        return
    try:
        with app.connection_for_write() as conn:
            for queue in (TEST_QUEUE, f"{TEST_QUEUE}-unconsumed"):
                conn.default_channel.client.delete(
                    queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"
                )
    except Exception:  # noqa: S110 - best effort clean-up of the test queue
        pass


class _Inbox:
    """What a real SMTP server on localhost received."""

    def __init__(self):
        self.messages: list = []  # email.message.EmailMessage objects
        self.refuse: set[str] = set()  # recipients answered with 550
        self.delay = 0.0  # seconds to wait before answering DATA (the message is kept all the same)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd API
        if address in self.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
        import asyncio
        from email import message_from_bytes, policy

        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)  # kept, as a real server would, even if the answer comes late
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server (aiosmtpd) on localhost, with Django's SMTP backend pointed at it."""
    from aiosmtpd.controller import Controller

    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    inbox.port = port
    inbox.controller = controller
    yield inbox
    inbox.controller.stop()


@pytest.fixture
def fake_stripe(settings):
    """Stripe's API on localhost (tests/fake_stripe.py), with `stripe` pointed at it."""
    from tests.fake_stripe import FakeStripe

    fake = FakeStripe().start()
    settings.STRIPE_API_BASE = fake.url
    settings.STRIPE_API_RETRIES = 2
    yield fake
    fake.stop()


POSTMARK_WEBHOOK_AUTH = ("postmark", "hook-secret-1")  # the user:password of ANYMAIL_WEBHOOK_SECRET in tests


@pytest.fixture
def postmark(settings):
    """Postmark's email API on localhost (tests/fake_postmark.py), sent to by anymail's real Postmark backend, and
    the provider webhooks on, with a webhook secret."""
    from tests.fake_postmark import FakePostmark

    fake = FakePostmark().start()
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {
        "POSTMARK_SERVER_TOKEN": "server-token-for-tests",
        "POSTMARK_API_URL": fake.url,
        "WEBHOOK_SECRET": ":".join(POSTMARK_WEBHOOK_AUTH),
    }
    yield fake
    fake.stop()


def _tasks_eager(eager: bool):
    from loopsync.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = eager
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def tasks_in_process():
    """Tasks run in this process when published, as with `make run`."""
    yield from _tasks_eager(True)


@pytest.fixture
def tasks_published():
    """Tasks are published to the broker, as in production, on a queue of this test that no worker takes (the
    session's celery_worker, once started, would otherwise run them beside the test and its clean-up)."""
    from loopsync.celery import app

    queue, key = app.conf.task_default_queue, app.conf.task_default_routing_key
    app.conf.task_default_queue = app.conf.task_default_routing_key = f"{queue}-unconsumed"
    try:
        yield from _tasks_eager(False)
    finally:
        app.conf.task_default_queue, app.conf.task_default_routing_key = queue, key


@pytest.fixture
def make_loop(db):
    """A loop copied from a seeded template, activated unless told otherwise."""
    from loops.models import LoopTemplate
    from loops.seeding import templates_seed
    from loops.services import loop_activate, loop_create_from_template

    # Transactional tests empty every table afterwards, seeded ones included: seed again when needed.
    if not LoopTemplate.objects.exists():
        templates_seed(LoopTemplate)

    def make(team, slug: str = "stripe-payment-failed", activate: bool = True):
        loop = loop_create_from_template(team=team, template=LoopTemplate.objects.get(slug=slug))
        return loop_activate(loop=loop) if activate else loop

    return make
