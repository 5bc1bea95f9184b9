import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Membership
from accounts.services import membership_add, team_create


class Command(BaseCommand):
    help = "Create a local admin and team on first run and print how to log in (the password only once)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--url", default="http://127.0.0.1:8000/")

    def handle(self, *args, username: str, url: str, **options):
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is not None:
            self.stdout.write(
                f"Log in at {url} as {username!r} (its password was printed on first run; "
                f"reset it with: .venv/bin/python manage.py changepassword {username})"
            )
            return
        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            # An address of its own: "Send test event" syncs a test contact for it, and test-mode email
            # goes only to team members' addresses (printed on the console by `make run`).
            user = User.objects.create_superuser(username=username, email=f"{username}@localhost", password=password)
            team = team_create(name="My team")
            membership_add(team=team, user=user, role=Membership.Role.OWNER)
        self.stdout.write(self.style.SUCCESS("Created a local admin for this machine. The password is shown once:"))
        self.stdout.write(f"  URL:      {url}\n  username: {username}\n  password: {password}")
