"""Print a team's Audience as CSV: `manage.py contacts_export --team T [--segment NAME]`, every field and
property (contacts.services.exporting), in the columns contacts_import maps back."""

from django.core.management.base import BaseCommand

from accounts.commands import team_lookup
from contacts.models import Contact
from contacts.services import contacts_rows, csv_lines


class Command(BaseCommand):
    help = "Print a team's live contacts as CSV, with every field and property."

    def add_arguments(self, parser):
        parser.add_argument("--team", required=True, help="The team's name or id.")

    def handle(self, *args, team: str, **options):
        found = team_lookup(team)
        contacts = Contact.objects.filter(team=found, livemode=True)
        for line in csv_lines(contacts_rows(team=found, contacts=contacts)):
            self.stdout.write(line, ending="")
