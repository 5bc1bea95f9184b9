from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_naive, make_aware
from tqdm import tqdm

from webhooks.models import Endpoint, StripeSync
from webhooks.services.syncs import sync_run, sync_start
from webhooks.stripe_api import StripeUnavailable


class Command(BaseCommand):
    help = (
        "Read a Stripe account with its endpoint's restricted key. `import` syncs existing customers, their "
        "subscriptions and paid invoices into contacts and billing state; `catchup` fetches the events created "
        "since the newest one received (or --since) and processes them like webhooks, without doubles. Both "
        "resume an interrupted run of their kind."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        imports = sub.add_parser("import", help="Import existing customers.")
        imports.add_argument("--endpoint", required=True, metavar="UUID", help="The endpoint's UUID (in its URL).")
        imports.add_argument("--fire-events", action="store_true", help="Also fire the endpoint's events.")
        catchup = sub.add_parser("catchup", help="Fetch missed events.")
        catchup.add_argument("--endpoint", required=True, metavar="UUID", help="The endpoint's UUID (in its URL).")
        catchup.add_argument("--since", metavar="ISO", help="Events created from then on (ISO 8601, UTC if no zone).")

    def handle(self, *args, action: str, **options):
        try:
            endpoint = Endpoint.objects.get(uuid=options["endpoint"])
        except (Endpoint.DoesNotExist, ValidationError):
            raise CommandError(f"No endpoint has the UUID {options['endpoint']}.") from None
        since = None
        if options.get("since"):
            since = parse_datetime(options["since"])
            if since is None:
                raise CommandError(
                    f"--since takes an ISO 8601 time, such as 2026-11-30T08:00:00Z; got {options['since']!r}."
                )
            since = make_aware(since) if is_naive(since) else since
        kind = StripeSync.Kind.IMPORT if action == "import" else StripeSync.Kind.CATCHUP
        try:
            sync = sync_start(
                endpoint=endpoint,
                kind=kind,
                fire_events=options.get("fire_events", False),
                since=since,
                in_celery=False,
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        if sync.phase:
            self.stdout.write(
                f"Resuming the {sync.get_kind_display().lower()} begun {sync.created_at:%Y-%m-%d %H:%M} UTC."
            )
        with tqdm(total=sync.total, initial=sync.done, unit=" objects", file=self.stderr, dynamic_ncols=True) as bar:

            def progress(current: StripeSync) -> None:
                bar.total = current.total
                bar.set_description(current.phase)
                bar.update(current.done - bar.n)

            try:
                status = sync_run(sync_id=sync.id, progress=progress)
            except StripeUnavailable as exc:
                raise CommandError(f"{exc}. Run the command again to resume from where it stopped.") from None
        if not status:
            raise CommandError("A worker is running this already: follow it on the endpoint's page.")
        sync.refresh_from_db()
        if status == StripeSync.Status.FAILED:
            raise CommandError(sync.last_error)
        counts = ", ".join(f"{label}: {value:,}" for label, value in sync.summary)
        self.stdout.write(f"{sync.get_kind_display()} done. {counts or 'Nothing to do.'}.")
