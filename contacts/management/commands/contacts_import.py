"""Import a CSV file into a team's Audience: `manage.py contacts_import FILE --team T`. Columns are mapped by their
headers (Loops' sample columns in any case or spacing; any other column becomes a property, typed by its values),
and a summary is printed. It runs here, not in Celery."""

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.commands import team_lookup
from contacts.services import import_create, import_run, import_start
from contacts.services.importing import IMPORT_MAX_BYTES


class Command(BaseCommand):
    help = "Import contacts from a CSV file into a team's Audience, mapping columns by their headers."

    def add_arguments(self, parser):
        parser.add_argument("file", help="The CSV file (UTF-8, a header row first).")
        parser.add_argument("--team", required=True, help="The team's name or id.")
        parser.add_argument(
            "--trigger-loops", action="store_true", help="Start the loops new and changed contacts would."
        )

    def handle(self, *args, file: str, team: str, trigger_loops: bool, **options):
        found = team_lookup(team)
        try:
            with Path(file).open("rb") as handle:
                raw = handle.read(IMPORT_MAX_BYTES + 1)
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}") from None
        try:
            contact_import = import_create(team=found, user=None, filename=Path(file).name, raw=raw)
            pairs = zip(contact_import.columns, contact_import.mapping, strict=True)
            skipped = [header for header, target in pairs if not target]
            import_start(
                contact_import=contact_import,
                mapping=contact_import.mapping,
                trigger_loops=trigger_loops,
                in_celery=False,
            )
        except ValidationError as exc:  # ImportError_ too
            raise CommandError(" ".join(exc.messages)) from None
        status = import_run(import_id=contact_import.pk)
        contact_import.refresh_from_db()
        self.stdout.write(
            f"{contact_import.total:,} rows: {contact_import.created:,} new, {contact_import.updated:,} updated, "
            f"{contact_import.unchanged:,} unchanged, {contact_import.failed:,} refused ({status})."
        )
        if skipped:
            self.stdout.write("Columns skipped (no field or property name): " + ", ".join(skipped))
        for error in contact_import.error_rows.all()[:10]:
            self.stdout.write(f"  line {error.line}: {error.reason}")
        if contact_import.failed > 10:
            self.stdout.write(f"  … and {contact_import.failed - 10:,} more (the Audience's import page has them all).")
        self.stdout.write(f"Import {contact_import.pk}")
