"""Fixtures for the browser test: Debian's Chromium driven by Playwright's sync API, against pytest-django's
live server, with the app's real pipeline behind it (in-process tasks with SQLite; a real Celery worker on
Redis when a broker is configured, as in CI) and a real SMTP server on localhost for its email.

Playwright's sync API runs an asyncio event loop in the test's own thread (in a greenlet), so while a
browser is open Django sees a "running event loop" there and refuses ORM calls with
SynchronousOnlyOperation. Rather than switching that check off for the whole session
(DJANGO_ALLOW_ASYNC_UNSAFE), the fixtures keep database work out of the browser's lifetime: the
templates are seeded and the worker started before Playwright starts, Playwright stops before
pytest-django empties the tables, and the test itself reads everything through the UI. The server
thread and the worker thread have no event loop, so the app itself is unaffected.
"""

import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from conftest import service_missing

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
DESKTOP = {"width": 1280, "height": 800}
POLL_SECONDS = 30  # how long the pipeline (a worker, in CI) gets to show its work in the UI
PHONE = {"width": 390, "height": 844}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the test, so the page fixture can tell that the test failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def pipeline(live_server, smtp_server, settings, request):
    """What processes the test event and sends the loop's email, set up before any browser opens.

    Without a broker, tasks run eagerly in the live server's thread. With one (CI), the session's real
    Celery worker consumes them from Redis, exactly as in tests/test_email_pipeline.py. Either way the
    email goes to a real SMTP server on localhost (`smtp_server`, which points the settings at it: the
    server and the worker are threads of this process and read the same settings)."""
    if not django_settings.CELERY_TASK_ALWAYS_EAGER:
        request.getfixturevalue("celery_worker")
    settings.SITE_URL = live_server.url
    # The migration's seeded loop templates are gone after any earlier transactional test (their tables
    # are emptied): seed them again, as the `make_loop` fixture does. This is the database's initial
    # data, not set-up of the user's account: everything the user does goes through the UI.
    from loops.models import LoopTemplate
    from loops.seeding import templates_seed

    if not LoopTemplate.objects.exists():
        templates_seed(LoopTemplate)
    return smtp_server


@pytest.fixture
def chromium():
    """Debian's Chromium: Playwright's own browser downloads are never used (no `playwright install`)."""
    if not CHROMIUM.exists():
        service_missing(f"needs Chromium at {CHROMIUM}: apt-get install chromium")
    return CHROMIUM


@pytest.fixture
def chromium_browser(chromium, pipeline):
    # After `pipeline`: its database work must be done before Playwright's event loop starts (see above).
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


_SHOTS_CLEARED: set[Path] = set()  # the folders this run has cleared of an earlier run's screenshots


@pytest.fixture
def shots(request):
    """Saves full-page screenshots as test-artifacts/browser/NN-name.png, numbered in order (a test module
    with SHOTS_FOLDER = "x" saves them in test-artifacts/browser/x/). A run's first test in a folder clears it;
    the module's next tests number theirs after its shots."""
    folder = ARTIFACTS / getattr(request.module, "SHOTS_FOLDER", "")
    folder.mkdir(parents=True, exist_ok=True)
    if folder not in _SHOTS_CLEARED:
        _SHOTS_CLEARED.add(folder)
        for old in folder.glob("*.png"):
            old.unlink()

    class Shots:
        count = len(list(folder.glob("*.png")))

        def __call__(self, page, name: str) -> Path:
            self.count += 1
            path = folder / f"{self.count:02d}-{name}.png"
            page.wait_for_load_state()  # after a click that navigated: the new page, styles and all
            page.screenshot(path=str(path), full_page=True)
            return path

    return Shots()


@pytest.fixture
def page(chromium, pipeline, chromium_browser, shots, request):
    """A fresh browser context (no cookies) at desktop size; the default timeouts are 10 s. A failing test
    leaves a screenshot of where it stopped."""
    from playwright.sync_api import expect

    expect.set_options(timeout=10_000)
    context = chromium_browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        shots(page, "failure")
    context.close()


def sign_up(page, live_server, *, username: str, email: str, password: str, team: str) -> None:
    """A new user signs up through the page (their team is created; they are its owner)."""
    page.goto(live_server.url + "/signup/")
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password confirmation", exact=True).fill(password)
    page.get_by_label("Team name", exact=True).fill(team)
    page.get_by_role("button", name="Sign up", exact=True).click()


def htmx_settled(page) -> None:
    """htmx has run (the page's deferred scripts, by its load event) and has settled what it swapped in last: the
    new elements are processed (their hx- attributes bound) once `htmx-added` and the settling classes are gone."""
    from playwright.sync_api import expect

    page.wait_for_load_state()
    # A locator, not wait_for_function: the page's Content-Security-Policy forbids the eval that one needs
    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling, .htmx-added")).to_have_count(0)


def reload_until(page, locator, timeout: float = POLL_SECONDS) -> None:
    """Reload the page until `locator` is visible: for pages that show the worker's progress but do not poll."""
    from playwright.sync_api import expect

    deadline = time.monotonic() + timeout
    while True:
        try:
            expect(locator).to_be_visible(timeout=1_000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            page.reload()
