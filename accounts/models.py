from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


class Team(models.Model):
    """A tenant. Everything a customer owns hangs off a team."""

    name = models.CharField(max_length=120)
    # Opens (a pixel) and clicks (signed redirects) in the team's emails; each loop step and transactional
    # email can also turn them off for itself (loops.tracking).
    email_tracking = models.BooleanField(default=True, db_default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="teams")

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="membership_team_user_uniq"),
            models.CheckConstraint(
                condition=models.Q(role__in=["owner", "admin", "member"]), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"

    @property
    def is_owner(self) -> bool:
        return self.role == self.Role.OWNER

    @property
    def is_admin(self) -> bool:
        """Owner or admin: may change the team's settings (endpoints, secrets, API keys, sending, members)."""
        return self.role in (self.Role.OWNER, self.Role.ADMIN)


class Invitation(models.Model):
    """A link that lets the person with this email join a team, once, before it expires."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Membership.Role.choices, default=Membership.Role.MEMBER)
    token = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One open invitation per address and team, whatever the case it was typed in.
            models.UniqueConstraint(
                "team",
                Lower("email"),
                condition=models.Q(accepted_at__isnull=True),
                name="invitation_team_open_email_uniq",
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=["owner", "admin", "member"]), name="invitation_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} → {self.team}"


class SenderDomain(models.Model):
    """A domain a team sends from. Usable in a From once verified: the team published
    `loopsync-verification=<token>` as a TXT record on the domain itself."""

    TXT_PREFIX = "loopsync-verification="

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="sender_domains")
    domain = models.CharField(max_length=253)  # lower case, no trailing dot, IDNA (xn--…) for non-ASCII
    token = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    # Verify claims a check (accounts.services.senders.sender_domain_check_request) and a worker answers it: at most
    # one claim per SENDER_DOMAIN_CHECK_INTERVAL, and `check_pending` until the worker has recorded the outcome.
    check_requested_at = models.DateTimeField(null=True, blank=True)
    check_pending = models.BooleanField(default=False)

    class Meta:
        ordering = ["domain", "id"]
        constraints = [
            # Also the index of the send-time check: `team = ? AND domain = ? AND verified_at IS NOT NULL`.
            models.UniqueConstraint(fields=["team", "domain"], name="senderdomain_team_domain_uniq"),
            models.CheckConstraint(condition=models.Q(domain=Lower("domain")), name="senderdomain_domain_lower"),
            models.CheckConstraint(
                condition=models.Q(check_pending=False) | models.Q(check_requested_at__isnull=False),
                name="senderdomain_pending_was_requested",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.domain} ({self.team})"

    def _pending_since(self) -> timedelta | None:
        if not self.check_pending or self.check_requested_at is None:
            return None
        return timezone.now() - self.check_requested_at

    @property
    def checking(self) -> bool:
        """A check was asked for and a worker has not answered yet (shown as "Checking…")."""
        age = self._pending_since()
        return age is not None and age < timedelta(seconds=settings.SENDER_DOMAIN_CHECK_INTERVAL)

    @property
    def check_lost(self) -> bool:
        """Still unanswered after the interval: no worker ran it (a lost task, no worker). Verify works again."""
        age = self._pending_since()
        return age is not None and age >= timedelta(seconds=settings.SENDER_DOMAIN_CHECK_INTERVAL)

    @property
    def txt_value(self) -> str:
        return f"{self.TXT_PREFIX}{self.token}"
