"""Request and response shapes of the Loops-compatible API (camelCase, as Loops' clients send them)."""

from rest_framework import serializers

from contacts.models import ContactProperty

SCALAR_HELP = "Custom contact properties go at the top level of the body: text, numbers, true/false or null."


class MailingListsField(serializers.DictField):
    child = serializers.BooleanField()

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "Mailing list ids mapped to true (subscribe) or false (unsubscribe).")
        super().__init__(**kwargs)


class ContactFieldsSerializer(serializers.Serializer):
    """The standard contact fields. Any other top-level key is a custom property."""

    email = serializers.EmailField(max_length=254, required=False)
    firstName = serializers.CharField(max_length=150, required=False, allow_blank=True, allow_null=True)  # noqa: N815
    lastName = serializers.CharField(max_length=150, required=False, allow_blank=True, allow_null=True)  # noqa: N815
    source = serializers.CharField(max_length=64, required=False, allow_blank=True, allow_null=True)
    subscribed = serializers.BooleanField(required=False)
    userGroup = serializers.CharField(max_length=120, required=False, allow_blank=True, allow_null=True)  # noqa: N815
    userId = serializers.CharField(max_length=255, required=False, allow_blank=True, allow_null=True)  # noqa: N815
    mailingLists = MailingListsField()  # noqa: N815


class ContactCreateSerializer(ContactFieldsSerializer):
    email = serializers.EmailField(max_length=254)


class ContactIdentifySerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254, required=False)
    userId = serializers.CharField(max_length=255, required=False)  # noqa: N815

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
    name = serializers.CharField(max_length=64, help_text="camelCase, e.g. planName.")
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
    eventProperties = serializers.DictField(required=False, allow_empty=True)  # noqa: N815


class TransactionalSerializer(serializers.Serializer):
    transactionalId = serializers.CharField(max_length=64)  # noqa: N815
    email = serializers.EmailField(max_length=254)
    addToAudience = serializers.BooleanField(required=False, default=False)  # noqa: N815
    dataVariables = serializers.DictField(required=False, allow_empty=True)  # noqa: N815
    attachments = serializers.ListField(child=serializers.DictField(), required=False, allow_empty=True)


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


class DeliveryPageSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    data = DeliverySerializer(many=True)
    pagination = PaginationSerializer()
