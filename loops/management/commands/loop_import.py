"""Create a draft loop from JSON (loops.services.specs): `manage.py loop_import FILE --team T`; prints its id
last. FILE may be - for standard input."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from accounts.commands import team_lookup
from loops.services import SpecError, loop_import
from loops.services.specs import MAX_SPEC_BYTES
from loopsync import jsonsafe


class Command(BaseCommand):
    help = "Create a draft loop for a team from a JSON file (the format loop_export prints); prints its id last."

    def add_arguments(self, parser):
        parser.add_argument("file", help="The JSON file, or - for standard input.")
        parser.add_argument("--team", required=True, help="The team's name or id.")
        parser.add_argument("--name", default="", help="A name instead of the file's.")

    def handle(self, *args, file: str, team: str, name: str, **options):
        found = team_lookup(team)
        try:
            text = sys.stdin.read(MAX_SPEC_BYTES + 1) if file == "-" else Path(file).read_text()[: MAX_SPEC_BYTES + 1]
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}") from None
        if len(text) > MAX_SPEC_BYTES:
            raise CommandError(f"A loop's JSON is at most {MAX_SPEC_BYTES:,} bytes.")
        try:
            spec = jsonsafe.loads(text)
        except jsonsafe.UnsafeJSON as exc:
            raise CommandError(f"{file} is not JSON: {exc}") from None
        try:
            loop = loop_import(team=found, spec=spec, name=name)
        except SpecError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(
            f"Created the draft loop “{loop.name}” for {found.name} ({len(spec.get('nodes', []))} steps)."
        )
        self.stdout.write(str(loop.pk))
