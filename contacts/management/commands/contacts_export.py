"""Print a team's Audience (or one of its segments) as CSV: `manage.py contacts_export --team T [--segment NAME]`,
every field and property (contacts.services.exporting), in the columns contacts_import maps back."""

from django.core.management.base import BaseCommand, CommandError

from accounts.commands import team_lookup
from contacts.models import Contact, Segment
from contacts.querying import conditions_q
from contacts.services import contacts_rows, csv_lines


class Command(BaseCommand):
    help = "Print a team's live contacts as CSV, with every field and property."

    def add_arguments(self, parser):
        parser.add_argument("--team", required=True, help="The team's name or id.")
        parser.add_argument("--segment", default="", help="Only the contacts of this segment (its name, any case).")

    def handle(self, *args, team: str, segment: str, **options):
        found = team_lookup(team)
        contacts = Contact.objects.filter(team=found, livemode=True)
        if segment:
            chosen = Segment.objects.filter(team=found, name__iexact=segment.strip()).first()
            if chosen is None:
                names = ", ".join(Segment.objects.filter(team=found).values_list("name", flat=True)[:20]) or "none"
                raise CommandError(f"{found.name} has no segment named “{segment}” (its segments: {names}).")
            contacts = contacts.filter(conditions_q(chosen.conditions))
        for line in csv_lines(contacts_rows(team=found, contacts=contacts)):
            self.stdout.write(line, ending="")
