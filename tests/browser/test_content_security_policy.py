"""The Content-Security-Policy in a real browser: the main pages, the loop editor's live preview, the Copy
buttons, the team switcher, the API docs and the Django admin all work under it, and the browser reports
not one policy violation (no `securitypolicyviolation` event, in any frame, and no console error).
Screenshots go to test-artifacts/browser/csp/.
"""

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from accounts.models import Membership
from accounts.services import membership_add, team_create
from webhooks.services import endpoint_create

pytestmark = [pytest.mark.django_db(transaction=True)]

SHOTS_FOLDER = "csp"
PASSWORD = "Difference-Engine-1822"
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"

# Added to every frame before its own scripts run (Playwright injects it through the DevTools protocol, so
# the policy under test does not apply to it). Sandboxed frames cannot run it; Chromium also writes every
# violation to the console, which the test reads from all frames.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.reportViolation({page: location.href, directive: e.violatedDirective, blocked: e.blockedURI,
                          source: e.sourceFile, line: e.lineNumber, sample: e.sample});
}, true);
"""


@pytest.fixture
def ada(pipeline):
    """A staff user in two teams, Acme (owner, with a Stripe endpoint) and Globex (member), made before the
    browser starts (see tests/browser/conftest.py)."""
    user = get_user_model().objects.create_user("ada", "ada@acme.test", PASSWORD, is_staff=True, is_superuser=True)
    acme = team_create(name="Acme")
    membership_add(team=acme, user=user, role=Membership.Role.OWNER)
    membership_add(team=team_create(name="Globex"), user=user, role=Membership.Role.MEMBER)
    endpoint = endpoint_create(team=acme, secret="whsec_csp_test", name="Main account")
    return {"endpoint": endpoint}


def watch(page: Page) -> tuple[list, list]:
    violations: list[dict] = []
    console: list[str] = []
    page.expose_function("reportViolation", lambda violation: violations.append(violation))
    page.add_init_script(REPORT_VIOLATIONS)

    def on_console(message):
        where = message.location.get("url", "")
        # The app has no favicon: the browser's own request for one is no page's doing.
        if message.type in {"error", "warning"} and not where.endswith("/favicon.ico"):
            console.append(f"{message.type}: {message.text} ({where})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    return violations, console


def visit(page: Page, url: str):
    response = page.goto(url)
    assert response is not None and response.ok, url
    assert "script-src 'self'" in response.headers["content-security-policy"], url
    return response


def test_every_page_works_under_the_policy_without_a_violation(ada, page: Page, live_server, shots):
    violations, console = watch(page)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    url = live_server.url

    # The admin's log-in page, logged out, then the app's.
    visit(page, url + "/admin/login/")
    expect(page.get_by_label("Username:")).to_be_visible()
    shots(page, "admin-login")
    visit(page, url + "/login/")
    page.get_by_label("Username", exact=True).fill("ada")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.get_by_role("heading", name="Acme", exact=True)).to_be_visible()
    shots(page, "dashboard")

    # The team switcher submits on change (app.js, no inline handler).
    page.get_by_label("Team", exact=True).select_option(label="Globex")
    expect(page.get_by_role("status").filter(has_text="Switched to Globex.")).to_be_visible()
    expect(page.get_by_role("heading", name="Globex", exact=True)).to_be_visible()
    page.get_by_label("Team", exact=True).select_option(label="Acme")
    expect(page.get_by_role("heading", name="Acme", exact=True)).to_be_visible()

    visit(page, url + "/audience/")
    shots(page, "audience")

    # The loop editor: htmx's live preview follows typing, and the email in its sandboxed srcdoc frame is
    # styled by its <style> block and style="" attributes.
    visit(page, url + "/loops/new/")
    page.locator("form", has_text="Stripe - Payment Failed").get_by_role("button").click()
    page.get_by_role("link", name="Edit step 1", exact=True).click()
    policy = page.evaluate("() => document.querySelector('meta[name=htmx-config]').content")
    assert '"allowEval": false' in policy
    page.get_by_label("Subject", exact=True).fill("{{ contact.first_name }}, {{ event.amount_formatted }} is due")
    expect(page.get_by_test_id("preview-subject")).to_have_text("Ada, $25.00 is due")
    page.get_by_label("Body", exact=True).fill(
        "Hello **{{ contact.first_name }}**\n\n[Pay now](https://example.com/pay){.button}"
    )
    frame = page.frame_locator("iframe.email-frame")
    expect(frame.locator("strong")).to_have_text("Ada")
    button = frame.get_by_role("link", name="Pay now")
    assert button.evaluate("a => getComputedStyle(a).backgroundColor") == "rgb(74, 91, 212)"  # style="" applies
    assert frame.locator("body").evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(244, 245, 249)"
    assert frame.locator("style").evaluate("s => s.sheet !== null && s.sheet.cssRules.length") == 2  # <style> too
    shots(page, "loop-editor")

    # Stripe endpoint page: Copy puts the URL on the clipboard.
    visit(page, url + f"/settings/webhooks/stripe/{ada['endpoint'].pk}/")
    receive_url = page.get_by_label("Endpoint URL", exact=True).input_value()
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.get_by_role("button", name="Copied", exact=True)).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == receive_url
    shots(page, "stripe-endpoint")

    # A new API key, and its Copy button.
    visit(page, url + "/settings/api/")
    page.get_by_label("Key name", exact=True).fill("CSP test")
    page.get_by_role("button", name="Create key", exact=True).click()
    key = page.get_by_label("Your new API key", exact=True).input_value()
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.get_by_role("button", name="Copied", exact=True)).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == key
    shots(page, "api-key")

    # The API docs: Swagger UI renders the schema.
    visit(page, url + "/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("LoopSync API")
    expect(page.get_by_text("/api/v1/contacts/create", exact=True)).to_be_visible()
    page.get_by_text("/api/v1/contacts/create", exact=True).click()  # expands the operation
    expect(page.get_by_role("button", name="Try it out")).to_be_visible()
    shots(page, "api-docs")
    visit(page, url + "/api/redoc/")
    expect(page.get_by_role("heading", name="LoopSync API (1.0.0)")).to_be_visible()
    page.get_by_placeholder("Search...").fill("transactional")  # ReDoc searches in a blob: worker
    expect(page.locator('[data-role="search:results"]').get_by_text("List transactional emails")).to_be_visible()
    shots(page, "api-redoc")

    # The admin, logged in: its index, a list and a change form.
    visit(page, url + "/admin/")
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    visit(page, url + "/admin/webhooks/endpoint/")
    page.get_by_role("link", name="Main account").click()
    expect(page.get_by_role("heading", name="Change endpoint")).to_be_visible()
    shots(page, "admin-endpoint")

    # The one thing blocked, on purpose: ReDoc's footer logo from Redocly's CDN (the docs make no third-party
    # requests). It also shows that the violations are seen at all.
    assert [v["blocked"] for v in violations] == [REDOC_LOGO]
    assert [line for line in console if REDOC_LOGO not in line] == []
