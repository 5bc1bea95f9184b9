"""Request and response shapes of the Loops-compatible API (camelCase, as Loops' clients send them)."""

from django.conf import settings
from rest_framework import serializers

from contacts.billing import BILLING_LABELS, BILLING_PROPERTIES
from contacts.models import ContactProperty

# Optional fields that may be `null`, as Loops' clients send them (the PyPI `loops-sdk` sends
# `"mailingLists": null` and `"eventProperties": null` by default): null is the same as leaving them out.
NULL_IS_ABSENT = "`null` is the same as leaving it out."


def _map_capped(value: dict, *, noun: str, count_setting: str, chars_setting: str) -> None:
    """A 400 when `value` has more keys than settings.<count_setting>, or a string in it (at any depth) longer
    than settings.<chars_setting>; the message names the cap and the setting."""
    limit = getattr(settings, count_setting)
    if len(value) > limit:
        raise serializers.ValidationError(
            f"At most {limit:,} {noun} in one request ({count_setting}); this one has {len(value):,}."
        )
    max_chars = getattr(settings, chars_setting)
    found = _long_string(value, max_chars)
    if found is not None:
        raise serializers.ValidationError({found: f"A value is at most {max_chars:,} characters ({chars_setting})."})


def _long_string(value, max_chars: int, path: str = "") -> str | None:
    """The path (`items[0].name`) of the first string in `value` longer than `max_chars`."""
    if isinstance(value, str):
        return path if len(value) > max_chars else None
    if isinstance(value, dict):
        children = ((f"{path}.{key}" if path else str(key), item) for key, item in value.items())
    elif isinstance(value, list):
        children = ((f"{path}[{index}]", item) for index, item in enumerate(value))
    else:
        return None
    for child_path, item in children:
        found = _long_string(item, max_chars, child_path)
        if found is not None:
            return found
    return None


class MailingListsField(serializers.DictField):
    child = serializers.BooleanField()

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        kwargs.setdefault(
            "help_text", f"Mailing list ids mapped to true (subscribe) or false (unsubscribe). {NULL_IS_ABSENT}"
        )
        super().__init__(**kwargs)


class ContactFieldsSerializer(serializers.Serializer):
    """The standard contact fields. Any other top-level key is a custom property. `null` clears a text field
    (Loops: "to empty or reset the value of a contact property, send a null value"); for email, userId and
    subscribed, which have no empty value, it is the same as leaving them out."""

    email = serializers.EmailField(max_length=254, required=False, allow_null=True)
    firstName = serializers.CharField(max_length=150, required=False, allow_blank=True, allow_null=True)  # noqa: N815
    lastName = serializers.CharField(max_length=150, required=False, allow_blank=True, allow_null=True)  # noqa: N815
    source = serializers.CharField(max_length=64, required=False, allow_blank=True, allow_null=True)
    subscribed = serializers.BooleanField(required=False, allow_null=True)
    userGroup = serializers.CharField(max_length=120, required=False, allow_blank=True, allow_null=True)  # noqa: N815
    userId = serializers.CharField(max_length=255, required=False, allow_blank=True, allow_null=True)  # noqa: N815
    mailingLists = MailingListsField()  # noqa: N815


class ContactCreateSerializer(ContactFieldsSerializer):
    email = serializers.EmailField(max_length=254)


class ContactIdentifySerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254, required=False, allow_null=True)
    userId = serializers.CharField(max_length=255, required=False, allow_null=True)  # noqa: N815

    def validate(self, attrs):
        if bool(attrs.get("email")) == bool(attrs.get("userId")):
            raise serializers.ValidationError("Give an email or a userId (one of them).")
        return attrs


class ContactSerializer(serializers.Serializer):
    """A contact as Loops returns it; custom properties are added at the top level."""

    id = serializers.CharField()
    email = serializers.EmailField()
    firstName = serializers.CharField(allow_null=True)  # noqa: N815
    lastName = serializers.CharField(allow_null=True)  # noqa: N815
    source = serializers.CharField()
    subscribed = serializers.BooleanField()
    userGroup = serializers.CharField()  # noqa: N815
    userId = serializers.CharField(allow_null=True)  # noqa: N815
    mailingLists = serializers.DictField(child=serializers.BooleanField())  # noqa: N815
    optInStatus = serializers.CharField(allow_null=True)  # noqa: N815


BILLING_FIELD = {
    "string": serializers.CharField,
    "number": serializers.FloatField,
    "boolean": serializers.BooleanField,
    "date": serializers.CharField,  # ISO 8601 text, as Stripe's times are stored
}


class BillingContactSerializer(ContactSerializer):
    """A contact as Loops returns it, with Stripe's billing state (contacts.billing): each property present once
    known, at the top level like any custom property."""

    def get_fields(self):
        fields = super().get_fields()
        for key, kind in BILLING_PROPERTIES.items():
            fields[key] = BILLING_FIELD[kind](
                required=False, help_text=f"Stripe billing: {BILLING_LABELS[key].lower()}."
            )
        return fields


class SuccessSerializer(serializers.Serializer):
    success = serializers.BooleanField()


class SuccessIdSerializer(SuccessSerializer):
    id = serializers.CharField()


class SuccessMessageSerializer(SuccessSerializer):
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    message = serializers.CharField()


class ApiKeySerializer(SuccessSerializer):
    teamName = serializers.CharField()  # noqa: N815


class PropertySerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    type = serializers.ChoiceField(choices=ContactProperty.Type.values)


class PropertyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(
        max_length=64, help_text="camelCase, e.g. plan. The Stripe billing properties (planName, mrr…) are built in."
    )
    type = serializers.ChoiceField(choices=ContactProperty.Type.values)


class MailingListSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField(allow_null=True)
    isPublic = serializers.BooleanField()  # noqa: N815


class SuppressionContactSerializer(serializers.Serializer):
    id = serializers.CharField()
    email = serializers.EmailField()
    userId = serializers.CharField(allow_null=True)  # noqa: N815


class RemovalQuotaSerializer(serializers.Serializer):
    limit = serializers.IntegerField()
    remaining = serializers.IntegerField()


class SuppressionSerializer(serializers.Serializer):
    contact = SuppressionContactSerializer()
    isSuppressed = serializers.BooleanField()  # noqa: N815
    removalQuota = RemovalQuotaSerializer()  # noqa: N815


class SuppressionRemovedSerializer(SuccessMessageSerializer):
    removalQuota = RemovalQuotaSerializer()  # noqa: N815


class EventSendSerializer(ContactFieldsSerializer):
    eventName = serializers.CharField(max_length=120)  # noqa: N815
    eventProperties = serializers.DictField(  # noqa: N815
        required=False,
        allow_empty=True,
        allow_null=True,
        help_text=f"Text, numbers or true/false, for the emails this event sends. {NULL_IS_ABSENT}",
    )

    def validate_eventProperties(self, value):  # noqa: N802
        """Capped like contact properties; a `null` value is left out, as is a `null` object."""
        if value is None:
            return {}
        _map_capped(
            value,
            noun="event properties",
            count_setting="EVENT_PROPERTIES_PER_REQUEST",
            chars_setting="PROPERTY_VALUE_MAX_CHARS",
        )
        nested = next((key for key, item in value.items() if isinstance(item, dict | list)), None)
        if nested is not None:
            raise serializers.ValidationError({nested: "A value is text, a number or true/false."})
        return {key: item for key, item in value.items() if item is not None}


class TransactionalSerializer(serializers.Serializer):
    transactionalId = serializers.CharField(max_length=64)  # noqa: N815
    email = serializers.EmailField(max_length=254)
    addToAudience = serializers.BooleanField(  # noqa: N815
        required=False, default=False, allow_null=True, help_text=f"Default false. {NULL_IS_ABSENT}"
    )
    dataVariables = serializers.DictField(  # noqa: N815
        required=False, allow_empty=True, allow_null=True, help_text=NULL_IS_ABSENT
    )
    attachments = serializers.ListField(
        child=serializers.DictField(), required=False, allow_empty=True, allow_null=True, help_text=NULL_IS_ABSENT
    )

    def validate_dataVariables(self, value):  # noqa: N802
        if value is None:
            return {}
        _map_capped(
            value,
            noun="data variables",
            count_setting="DATA_VARIABLES_PER_REQUEST",
            chars_setting="DATA_VARIABLE_MAX_CHARS",
        )
        return value


class EventSerializer(serializers.Serializer):
    id = serializers.CharField()
    eventName = serializers.CharField()  # noqa: N815
    email = serializers.EmailField()
    userId = serializers.CharField(allow_null=True)  # noqa: N815
    eventProperties = serializers.DictField()  # noqa: N815
    source = serializers.CharField()
    occurredAt = serializers.DateTimeField()  # noqa: N815
    createdAt = serializers.DateTimeField()  # noqa: N815


class PaginationSerializer(serializers.Serializer):
    perPage = serializers.IntegerField()  # noqa: N815
    returnedResults = serializers.IntegerField()  # noqa: N815
    nextCursor = serializers.CharField(allow_null=True)  # noqa: N815


class EventPageSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    data = EventSerializer(many=True)
    pagination = PaginationSerializer()


class DeliverySerializer(serializers.Serializer):
    id = serializers.CharField()
    endpoint = serializers.CharField()
    stripeEventId = serializers.CharField()  # noqa: N815
    type = serializers.CharField()
    status = serializers.CharField()
    reason = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_blank=True)
    receivedAt = serializers.DateTimeField()  # noqa: N815
    processedAt = serializers.DateTimeField(allow_null=True)  # noqa: N815
    livemode = serializers.BooleanField(help_text="False for a Stripe test-mode event (or a test event of the app).")


class DeliveryPageSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    data = DeliverySerializer(many=True)
    pagination = PaginationSerializer()


class TransactionalEmailSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The `transactionalId` to send it with.")
    name = serializers.CharField()
    lastUpdated = serializers.DateTimeField()  # noqa: N815
    dataVariables = serializers.ListField(  # noqa: N815
        child=serializers.CharField(), help_text="The variables every send must give."
    )


class TransactionalPaginationSerializer(serializers.Serializer):
    """Loops' pagination, with totals and the next page's address."""

    totalResults = serializers.IntegerField()  # noqa: N815
    returnedResults = serializers.IntegerField()  # noqa: N815
    perPage = serializers.IntegerField()  # noqa: N815
    totalPages = serializers.IntegerField()  # noqa: N815
    nextCursor = serializers.CharField(allow_null=True)  # noqa: N815
    nextPage = serializers.CharField(allow_null=True)  # noqa: N815


class TransactionalPageSerializer(serializers.Serializer):
    pagination = TransactionalPaginationSerializer()
    data = TransactionalEmailSerializer(many=True)
