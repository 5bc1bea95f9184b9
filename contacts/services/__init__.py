"""Contact use cases: syncing from Stripe, editing, the API's upsert.

One module per use case. Views, API views, tasks, commands and the admin call these. Each public name is
re-exported here, so `from contacts.services import ...` works (operators' scripts in `manage.py shell`)."""

from .editing import (
    EMAIL_TAKEN,
    RESUBSCRIBABLE_BY_TEAM,
    RESUBSCRIBE_REFUSED,
    SOURCE_APP,
    ResubscribeRefused,
    contact_delete,
    contact_properties_update,
    contact_save,
    contact_set_subscribed,
    resubscribe_refused,
)
from .lists import (
    NAME_TAKEN,
    contact_lists_change,
    contact_lists_set,
    mailing_list_create,
    mailing_list_delete,
    mailing_list_update,
)
from .properties import (
    PROPERTY_KEY,
    RESERVED_KEYS,
    ContactConflict,
    contact_property_create,
    property_values_clean,
    property_values_validate,
)
from .syncing import (
    SOURCE_STRIPE,
    ContactKey,
    SyncItem,
    SyncResult,
    contact_for_customer,
    contact_for_stripe,
    contact_sync,
    contact_sync_item,
    contacts_lock,
    contacts_sync,
    email_moving,
    name_split,
)
from .upserting import (
    SOURCE_API,
    contact_upsert,
)

__all__ = [
    "ContactConflict",
    "ContactKey",
    "EMAIL_TAKEN",
    "NAME_TAKEN",
    "PROPERTY_KEY",
    "RESERVED_KEYS",
    "RESUBSCRIBABLE_BY_TEAM",
    "RESUBSCRIBE_REFUSED",
    "ResubscribeRefused",
    "SOURCE_API",
    "SOURCE_APP",
    "SOURCE_STRIPE",
    "SyncItem",
    "SyncResult",
    "contact_delete",
    "contact_properties_update",
    "contact_for_customer",
    "contact_for_stripe",
    "contact_lists_change",
    "contact_lists_set",
    "contact_property_create",
    "contact_save",
    "contact_set_subscribed",
    "contact_sync",
    "contact_sync_item",
    "contact_upsert",
    "contacts_lock",
    "contacts_sync",
    "email_moving",
    "mailing_list_create",
    "mailing_list_delete",
    "mailing_list_update",
    "name_split",
    "property_values_clean",
    "property_values_validate",
    "resubscribe_refused",
]
