from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Team
from webhooks.models import Endpoint
from webhooks.stripe_events import SUPPORTED_EVENTS

pytestmark = pytest.mark.django_db


def run(*args) -> list[str]:
    out = StringIO()
    call_command("stripe_endpoint", "create", *args, stdout=out)
    return out.getvalue().splitlines()


def test_create_makes_team_and_endpoint_and_prints_the_path_last():
    lines = run(
        "--team",
        "Acme",
        "--secret",
        "whsec_abcdef123456",
        "--trigger",
        "invoice.payment_failed=failedPayment",
        "--trigger",
        "invoice.paid=successfulPayment",
        "--disable",
        "invoice.upcoming",
    )
    endpoint = Endpoint.objects.get()
    assert lines[-1] == f"/webhooks/stripe/{endpoint.uuid}/"
    assert endpoint.team.name == "Acme" and endpoint.signing_secret == "whsec_abcdef123456"
    settings = {s.event_type: (s.enabled, s.trigger_event_name) for s in endpoint.event_settings.all()}
    assert settings == {
        **{event_type: (True, "") for event_type in SUPPORTED_EVENTS},
        "invoice.paid": (True, "successfulPayment"),
        "invoice.payment_failed": (True, "failedPayment"),
        "invoice.upcoming": (False, ""),
    }
    assert "whsec_abcdef123456" not in "\n".join(lines)  # only a hint of the secret is printed


def test_create_takes_a_trigger_for_every_supported_type():
    triggers = {event_type: f"fired{i}" for i, event_type in enumerate(SUPPORTED_EVENTS)}
    lines = run("--team", "Acme", "--secret", "whsec_abcdef123456", *[
        arg for event_type, name in triggers.items() for arg in ("--trigger", f"{event_type}={name}")
    ])  # fmt: skip
    endpoint = Endpoint.objects.get()
    assert {s.event_type: s.trigger_event_name for s in endpoint.event_settings.all()} == triggers
    assert len(SUPPORTED_EVENTS) == 22 and f"supported: {len(SUPPORTED_EVENTS)} types" in lines[-2]
    for event_type, name in triggers.items():
        assert any(event_type in line and f"fires {name}" in line for line in lines), event_type


def test_create_reuses_an_existing_team():
    run("--team", "Acme", "--secret", "whsec_abcdef123456")
    run("--team", "Acme", "--secret", "whsec_abcdef654321")
    assert Team.objects.count() == 1 and Endpoint.objects.count() == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trigger", "charge.succeeded=paid"], "Not a supported Stripe event type: charge.succeeded"),
        (["--disable", "invoice.created"], "Not a supported Stripe event type: invoice.created"),
        (["--trigger", "invoice.paid"], "TYPE=eventName"),
        (["--tolerance", "0"], "at least one second"),
    ],
)
def test_bad_arguments_are_clear_errors_and_create_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        run("--team", "Acme", "--secret", "whsec_abcdef123456", *args)
    assert not Endpoint.objects.exists()


def test_secret_must_look_like_a_stripe_signing_secret():
    with pytest.raises(CommandError, match="whsec_"):
        run("--team", "Acme", "--secret", "sk_live_oops")
    assert not Endpoint.objects.exists()
