from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.services import team_get_or_create
from webhooks.models import Endpoint
from webhooks.services import endpoint_create
from webhooks.stripe_events import SUPPORTED_EVENTS


class Command(BaseCommand):
    help = (
        "Set up Stripe endpoints from scripts. `create` makes the team if needed and an endpoint, and "
        "prints the endpoint's URL path as its last line."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create an endpoint.")
        create.add_argument("--team", required=True, help="Team name; created if it does not exist.")
        create.add_argument("--secret", required=True, help="Stripe's signing secret, whsec_…")
        create.add_argument("--name", default="Stripe", help="A name for the endpoint.")
        create.add_argument(
            "--trigger",
            action="append",
            default=[],
            metavar="TYPE=eventName",
            help="Fire eventName for this Stripe type (repeatable).",
        )
        create.add_argument(
            "--disable", action="append", default=[], metavar="TYPE", help="Do not accept this type (repeatable)."
        )
        create.add_argument("--tolerance", type=int, default=300, help="Signature age tolerance in seconds.")
        create.add_argument(
            "--mode",
            choices=Endpoint.Mode.values,
            default=Endpoint.Mode.LIVE,
            help="Stripe's live or test mode (default live); the other mode's events are ignored.",
        )

    def handle(self, *args, action: str, **options):
        triggers: dict[str, str] = {}
        for item in options["trigger"]:
            event_type, sep, name = item.partition("=")
            if not sep or not event_type.strip() or not name.strip():
                raise CommandError(f"--trigger takes TYPE=eventName, got {item!r}.")
            triggers[event_type.strip()] = name.strip()
        try:
            team, team_created = team_get_or_create(name=options["team"])
            endpoint = endpoint_create(
                team=team,
                secret=options["secret"],
                name=options["name"],
                triggers=triggers,
                disabled={t.strip() for t in options["disable"]},
                tolerance=options["tolerance"],
                mode=options["mode"],
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        if team_created:
            self.stdout.write(f"Created team {team.name!r}.")
        self.stdout.write(
            f"Created endpoint {endpoint.name!r} for Stripe's {endpoint.get_mode_display().lower()} "
            f"(signing secret {endpoint.secret_hint})."
        )
        for setting in endpoint.event_settings.all():
            state = "on " if setting.enabled else "off"
            fires = f"fires {setting.trigger_event_name}" if setting.trigger_event_name else "syncs the contact only"
            self.stdout.write(f"  [{state}] {setting.event_type:<42} {fires if setting.enabled else ''}")
        self.stdout.write(
            f"Paste this URL into Stripe, on your public host (supported: {len(SUPPORTED_EVENTS)} types):"
        )
        self.stdout.write(endpoint.get_receive_path())
