"""API keys: create (shown once), authenticate (by hash), revoke."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Team

from ..models import ApiKey

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


class KeyCreatedAlready(Exception):
    """This form made its key already (a reload posted it again): the key was shown once, and is not again."""

    def __init__(self, api_key: ApiKey):
        super().__init__(f"{api_key.name} ({api_key.prefix}…) was created already.")
        self.api_key = api_key


def api_key_create(*, team: Team, name: str, created_by=None, request_id: str = "") -> NewKey:
    """A new key, whose full value exists only in the returned NewKey. `request_id` (the creating form's)
    makes a repeat of the same form raise KeyCreatedAlready instead of making a second key."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            api_key = ApiKey.objects.create(
                team=team,
                name=name.strip() or "API key",
                prefix=key[: len(KEY_PREFIX) + 6],
                key_hash=key_hash(key),
                created_by=created_by,
                request_id=request_id,
            )
    except IntegrityError:
        first = ApiKey.objects.filter(team=team, request_id=request_id).first() if request_id else None
        if first is None:
            raise
        raise KeyCreatedAlready(first) from None
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
