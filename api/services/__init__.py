"""API use cases: keys.

One module per use case. Views, API views, tasks, commands and the admin call these. Each public name is
re-exported here, so `from api.services import ...` works (operators' scripts in `manage.py shell`)."""

from .keys import (
    KEY_PREFIX,
    LAST_USED_RESOLUTION,
    KeyCreatedAlready,
    NewKey,
    api_key_authenticate,
    api_key_create,
    api_key_revoke,
    key_hash,
)
from .suppressions import (
    SUPPRESSION_REMOVALS_PER_30_DAYS,
    NotSuppressed,
    RemovalsExhausted,
    suppression_quota,
    suppression_remove,
)

__all__ = [
    "KEY_PREFIX",
    "KeyCreatedAlready",
    "LAST_USED_RESOLUTION",
    "NewKey",
    "NotSuppressed",
    "RemovalsExhausted",
    "SUPPRESSION_REMOVALS_PER_30_DAYS",
    "api_key_authenticate",
    "api_key_create",
    "api_key_revoke",
    "key_hash",
    "suppression_quota",
    "suppression_remove",
]
