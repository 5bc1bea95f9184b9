"""Print a loop as JSON (loops.services.specs): `manage.py loop_export --team T --name NAME`."""

import json

from django.core.management.base import BaseCommand, CommandError

from accounts.commands import team_lookup
from loops.models import Loop
from loops.services import loop_export


class Command(BaseCommand):
    help = "Print a loop of a team as JSON: its name, trigger, frequency, nodes and edges, and email content."

    def add_arguments(self, parser):
        parser.add_argument("--team", required=True, help="The team's name or id.")
        parser.add_argument("--name", required=True, help="The loop's name (any case).")

    def handle(self, *args, team: str, name: str, **options):
        found = team_lookup(team)
        loop = Loop.objects.filter(team=found, name__iexact=name.strip()).first()
        if loop is None:
            raise CommandError(f"{found.name} has no loop named {name!r}.")
        self.stdout.write(json.dumps(loop_export(loop=loop), indent=2, ensure_ascii=False))
