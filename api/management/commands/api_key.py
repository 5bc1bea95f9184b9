from django.core.management.base import BaseCommand, CommandError

from accounts.commands import team_lookup
from accounts.models import Team
from api.forms import NAME_MAX_LENGTH
from api.models import ApiKey
from api.services import api_key_create, api_key_revoke
from loopsync.ids import parse_id


def key_lookup(team: Team, value: str) -> ApiKey:
    """One of the team's keys, by its prefix (with or without the trailing …) or its id."""
    value = value.strip().rstrip("…").rstrip(".")
    keys = list(ApiKey.objects.filter(team=team, prefix=value)) if value else []
    if not keys and parse_id(value):
        keys = list(ApiKey.objects.filter(team=team, pk=parse_id(value)))
    if not keys:
        raise CommandError(f"Team {team.name!r} has no key with prefix or id {value!r}.")
    if len(keys) > 1:
        ids = ", ".join(str(k.pk) for k in keys)
        raise CommandError(f"Several keys of team {team.name!r} start with {value!r} (ids {ids}): pass the id.")
    return keys[0]


class Command(BaseCommand):
    help = (
        "Manage a team's API keys. `create` prints the new key as its last line: it is shown only then. "
        "`list` and `revoke` never show a full key."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a key and print it (once).")
        create.add_argument("--team", required=True, help="The team's name or id.")
        create.add_argument("--name", default="API key", help="A name for the key, to tell keys apart.")
        listing = sub.add_parser("list", help="List the team's keys.")
        listing.add_argument("--team", required=True, help="The team's name or id.")
        revoke = sub.add_parser("revoke", help="Revoke a key: requests with it are refused from then on.")
        revoke.add_argument("key", metavar="PREFIX_OR_ID", help="The key's prefix (ls_AbCdEf) or its id.")
        revoke.add_argument("--team", required=True, help="The team's name or id.")

    def handle(self, *args, action: str, **options):
        team = team_lookup(options.pop("team"))
        getattr(self, f"handle_{action}")(team, **options)

    def handle_create(self, team: Team, *, name: str, **options):
        name = name.strip()
        if not name:
            raise CommandError("--name cannot be blank.")
        if len(name) > NAME_MAX_LENGTH:
            raise CommandError(f"--name is at most {NAME_MAX_LENGTH} characters (it has {len(name)}).")
        new = api_key_create(team=team, name=name)
        self.stdout.write(f"Created key {new.api_key.prefix}… ({new.api_key.name!r}) for team {team.name!r}.")
        self.stdout.write("This is the only time the key is shown; keep it secret:")
        self.stdout.write(new.key)

    def handle_list(self, team: Team, **options):
        keys = ApiKey.objects.filter(team=team).order_by("-created_at", "-id")
        if not keys:
            self.stdout.write(f"Team {team.name!r} has no API key.")
            return
        self.stdout.write(f"{'ID':>5}  {'PREFIX':<11} {'STATUS':<8} {'LAST USED':<17} NAME")
        for k in keys:
            last_used = k.last_used_at.strftime("%Y-%m-%d %H:%M") if k.last_used_at else "never"
            status = "active" if k.active else "revoked"
            self.stdout.write(f"{k.pk:>5}  {k.prefix + '…':<11} {status:<8} {last_used:<17} {k.name}")

    def handle_revoke(self, team: Team, *, key: str, **options):
        api_key = key_lookup(team, key)
        if not api_key.active:
            self.stdout.write(f"Key {api_key.prefix}… ({api_key.name!r}) was already revoked.")
            return
        api_key_revoke(api_key=api_key)
        self.stdout.write(f"Revoked key {api_key.prefix}… ({api_key.name!r}) of team {team.name!r}.")
