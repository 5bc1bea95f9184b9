from django.conf import settings
from django.db import models
from django.db.models import Q

from accounts.models import Team


class ApiKey(models.Model):
    """A team's key to the public API. Only a SHA-256 of the key is stored; the key is shown once."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=120)
    # The first characters of the key, so people can tell keys apart (`ls_AbCd…`).
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # The form that created it (Settings → API): posting that form again never makes a second key.
    request_id = models.CharField(max_length=32, blank=True)

    class Meta:
        indexes = [models.Index(fields=["team", "-created_at"], name="apikey_team_created_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "request_id"], condition=~Q(request_id=""), name="apikey_team_request_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class IdempotencyRecord(models.Model):
    """The first answer to a request carrying an `Idempotency-Key`, replayed for 24 hours."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    path = models.CharField(max_length=200)
    # 0 while the first request is still being answered.
    status_code = models.PositiveSmallIntegerField(default=0)
    body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "key"], name="idempotency_team_key_uniq")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_idx", condition=Q(status_code__gt=0))]

    def __str__(self) -> str:
        return f"{self.key} → {self.status_code}"


class SuppressionRemoval(models.Model):
    """A contact resubscribed through `DELETE contacts/suppression`: counted against a 30-day quota."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    contact_id = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["team", "created_at"], name="suppression_team_created_idx")]

    def __str__(self) -> str:
        return f"contact {self.contact_id} at {self.created_at}"
