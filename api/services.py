"""API keys: create (shown once), authenticate (by hash), revoke."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from accounts.models import Team

from .models import ApiKey

KEY_PREFIX = "ls_"
# A key's last-used time is written at most this often: not one UPDATE per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class NewKey:
    api_key: ApiKey
    key: str  # the only time the full key exists outside the client


def key_hash(key: str) -> str:
    # A key is 256 random bits: a fast hash is enough (nothing to brute-force), and lookups stay one query.
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_create(*, team: Team, name: str, created_by=None) -> NewKey:
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        team=team,
        name=name.strip() or "API key",
        prefix=key[: len(KEY_PREFIX) + 6],
        key_hash=key_hash(key),
        created_by=created_by,
    )
    return NewKey(api_key=api_key, key=key)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_authenticate(key: str) -> ApiKey | None:
    """The active key for this secret, with its team, or None. Marks it used (at most once a minute)."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    api_key = ApiKey.objects.select_related("team").filter(key_hash=key_hash(key), revoked_at__isnull=True).first()
    if api_key is None:
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key
