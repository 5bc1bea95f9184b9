"""The Loops-compatible v1 API, plus the team's events and webhook log. Every query is the key's team's."""

import base64
import binascii
import math
from datetime import UTC, datetime
from urllib.parse import urlencode

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.response import Response

from contacts.billing import BILLING_LABELS, BILLING_PROPERTIES
from contacts.models import CONTACT_FIELDS, STANDARD_FIELDS, Contact, ContactProperty, ListMembership, MailingList
from contacts.selectors import contact_find
from contacts.services import (
    contact_delete,
    contact_property_create,
    contact_upsert,
)
from loops.models import Event, TransactionalEmail
from loops.services import event_name_validate, event_send
from loops.services.queueing import transactional_send
from loopsync.ids import parse_id
from webhooks.models import Delivery

from . import serializers as s
from .base import ApiView
from .services.suppressions import NotSuppressed, RemovalsExhausted, suppression_quota, suppression_remove

ERRORS = {code: s.ErrorSerializer for code in (400, 401, 404, 405, 409, 413, 415, 429)}
# The standard properties every contact has, as `GET contacts/properties?list=all` lists them.
STANDARD_PROPERTIES = [(f.loops_name, f.label, f.type) for f in CONTACT_FIELDS] + [("createdAt", "Created at", "date")]
PAGE_SIZES = (10, 50)  # perPage bounds, as Loops' list endpoints


def contact_json(contact: Contact) -> dict:
    lists = {str(list_id): True for list_id in ListMembership.objects.filter(contact=contact).values_list(
        "mailing_list_id", flat=True)}  # fmt: skip
    return {
        **(contact.properties or {}),
        "id": str(contact.pk),
        "email": contact.email,
        "firstName": contact.first_name or None,
        "lastName": contact.last_name or None,
        "source": contact.source,
        "subscribed": contact.subscribed,
        "userGroup": contact.user_group,
        "userId": contact.user_id or None,
        "mailingLists": lists,
        "optInStatus": None,
    }


def _split(data: dict, serializer_class) -> tuple[dict, dict, dict]:
    """Validate the standard fields; the rest of the body is custom properties.
    Returns (validated standard fields, model field values, custom properties)."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    known = set(serializer.fields)
    # `null` clears a text field; `subscribed` has no empty value, so there `null` is the same as leaving it out.
    fields = {
        STANDARD_FIELDS[name]: ("" if value is None else value)
        for name, value in serializer.validated_data.items()
        if name in STANDARD_FIELDS and name not in {"email", "userId"} and not (name == "subscribed" and value is None)
    }
    custom = {key: value for key, value in data.items() if key not in known}
    return serializer.validated_data, fields, custom


def _identify(request) -> Contact:
    params = s.ContactIdentifySerializer(data=request.query_params)
    params.is_valid(raise_exception=True)
    contact = contact_find(
        team=request.auth.team,
        email=params.validated_data.get("email", ""),
        user_id=params.validated_data.get("userId", ""),
    )
    if contact is None:
        raise exceptions.NotFound("Contact not found.")
    return contact


def _page_size(request) -> int:
    raw = request.query_params.get("perPage", "20")
    if not (raw.isascii() and raw.isdecimal() and len(raw) < 4) or not PAGE_SIZES[0] <= int(raw) <= PAGE_SIZES[1]:
        raise exceptions.ValidationError({"perPage": f"A number from {PAGE_SIZES[0]} to {PAGE_SIZES[1]}."})
    return int(raw)


def _cursor(request) -> int | None:
    raw = request.query_params.get("cursor", "")
    if not raw:
        return None
    try:
        last_id = parse_id(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        last_id = None
    if last_id is None:
        raise exceptions.ValidationError({"cursor": "Not a cursor from a previous page."})
    return last_id


def _encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def _loops_time(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, as Loops writes it: 2025-02-02T02:56:28.845Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _page(queryset, request) -> tuple[list, dict]:
    """Keyset pagination, newest first, by id."""
    size = _page_size(request)
    cursor = _cursor(request)
    if cursor is not None:
        queryset = queryset.filter(id__lt=cursor)
    rows = list(queryset.order_by("-id")[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return rows, {
        "perPage": size,
        "returnedResults": len(rows),
        "nextCursor": _encode_cursor(rows[-1].id) if more and rows else None,
    }


class ApiKeyView(ApiView):
    @extend_schema(responses={200: s.ApiKeySerializer, **ERRORS}, summary="Test an API key")
    def get(self, request):
        return Response({"success": True, "teamName": self.team.name})


class ContactCreateView(ApiView):
    @extend_schema(request=s.ContactCreateSerializer, responses={200: s.SuccessIdSerializer, **ERRORS})
    def post(self, request):
        data = self.data_object()
        validated, fields, custom = _split(data, s.ContactCreateSerializer)
        fields.setdefault("source", "")
        if not fields["source"]:
            fields.pop("source")
        contact, _ = contact_upsert(
            team=self.team,
            email=validated["email"],
            user_id=validated.get("userId") or "",
            fields=fields,
            properties=custom,
            mailing_lists=validated.get("mailingLists"),
            create_only=True,
        )
        return Response({"success": True, "id": str(contact.pk)})


class ContactUpdateView(ApiView):
    @extend_schema(request=s.ContactFieldsSerializer, responses={200: s.SuccessIdSerializer, **ERRORS})
    def put(self, request):
        data = self.data_object()
        validated, fields, custom = _split(data, s.ContactFieldsSerializer)
        if not validated.get("email") and not validated.get("userId"):
            raise exceptions.ValidationError("Give an email or a userId.")
        if not fields.get("source"):
            fields.pop("source", None)
        contact, _ = contact_upsert(
            team=self.team,
            email=validated.get("email") or "",
            user_id=validated.get("userId") or "",
            fields=fields,
            properties=custom,
            mailing_lists=validated.get("mailingLists"),
        )
        return Response({"success": True, "id": str(contact.pk)})


class ContactFindView(ApiView):
    @extend_schema(
        parameters=[
            OpenApiParameter("email", OpenApiTypes.EMAIL, required=False),
            OpenApiParameter("userId", OpenApiTypes.STR, required=False),
        ],
        responses={200: s.BillingContactSerializer(many=True), **ERRORS},
    )
    def get(self, request):
        params = s.ContactIdentifySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        contact = contact_find(
            team=self.team,
            email=params.validated_data.get("email", ""),
            user_id=params.validated_data.get("userId", ""),
        )
        return Response([contact_json(contact)] if contact else [])


class ContactDeleteView(ApiView):
    @extend_schema(request=s.ContactIdentifySerializer, responses={200: s.SuccessMessageSerializer, **ERRORS})
    def post(self, request):
        params = s.ContactIdentifySerializer(data=self.data_object())
        params.is_valid(raise_exception=True)
        contact = contact_find(
            team=self.team,
            email=params.validated_data.get("email", ""),
            user_id=params.validated_data.get("userId", ""),
        )
        if contact is None:
            raise exceptions.NotFound("Contact not found.")
        contact_delete(contact=contact)
        return Response({"success": True, "message": "Contact deleted."})


class ContactPropertiesView(ApiView):
    @extend_schema(
        parameters=[OpenApiParameter("list", OpenApiTypes.STR, enum=["all", "custom"], required=False)],
        responses={200: s.PropertySerializer(many=True), **ERRORS},
    )
    def get(self, request):
        which = request.query_params.get("list", "all")
        if which not in {"all", "custom"}:
            raise exceptions.ValidationError({"list": "all or custom."})
        # Stripe's billing properties are built in (contacts.billing), typed like declared ones.
        billing = [{"key": k, "label": BILLING_LABELS[k], "type": t} for k, t in BILLING_PROPERTIES.items()]
        custom = billing + [
            {"key": p.key, "label": p.label, "type": p.type} for p in ContactProperty.objects.filter(team=self.team)
        ]
        standard = [{"key": k, "label": label, "type": t} for k, label, t in STANDARD_PROPERTIES]
        return Response(custom if which == "custom" else standard + custom)

    @extend_schema(request=s.PropertyCreateSerializer, responses={200: s.SuccessSerializer, **ERRORS})
    def post(self, request):
        params = s.PropertyCreateSerializer(data=self.data_object())
        params.is_valid(raise_exception=True)
        contact_property_create(team=self.team, **params.validated_data)
        return Response({"success": True})


class ContactSuppressionView(ApiView):
    """Loops' suppression is our unsubscribed state: a suppressed contact gets no loop email."""

    parameters = [
        OpenApiParameter("email", OpenApiTypes.EMAIL, required=False),
        OpenApiParameter("userId", OpenApiTypes.STR, required=False),
    ]

    @extend_schema(parameters=parameters, responses={200: s.SuppressionSerializer, **ERRORS})
    def get(self, request):
        contact = _identify(request)
        return Response(
            {
                "contact": {"id": str(contact.pk), "email": contact.email, "userId": contact.user_id or None},
                "isSuppressed": not contact.subscribed,
                "removalQuota": suppression_quota(team=self.team),
            }
        )

    @extend_schema(parameters=parameters, responses={200: s.SuppressionRemovedSerializer, **ERRORS})
    def delete(self, request):
        contact = _identify(request)
        try:
            quota = suppression_remove(team=self.team, contact=contact)
        except NotSuppressed as exc:
            raise exceptions.ValidationError(str(exc)) from None
        except RemovalsExhausted as exc:
            raise exceptions.Throttled(detail=str(exc)) from None
        return Response({"success": True, "message": "Email removed from suppression list.", "removalQuota": quota})


class MailingListsView(ApiView):
    @extend_schema(responses={200: s.MailingListSerializer(many=True), **ERRORS})
    def get(self, request):
        return Response(
            [
                {"id": str(m.pk), "name": m.name, "description": m.description or None, "isPublic": m.is_public}
                for m in MailingList.objects.filter(team=self.team)
            ]
        )


class EventSendView(ApiView):
    @extend_schema(
        request=s.EventSendSerializer,
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False)],
        responses={200: s.SuccessSerializer, **ERRORS},
    )
    def post(self, request):
        return self.dispatch_idempotent(self._send)

    def _send(self):
        data = self.data_object()
        validated, fields, custom = _split(data, s.EventSendSerializer)
        try:
            name = event_name_validate(validated["eventName"])
        except DjangoValidationError as error:
            raise exceptions.ValidationError({"eventName": error.messages}) from None
        if not name:
            raise exceptions.ValidationError({"eventName": "Name the event."})
        properties = validated.get("eventProperties") or {}
        email, user_id = validated.get("email") or "", validated.get("userId") or ""
        if not email and not user_id:
            raise exceptions.ValidationError("Give an email or a userId.")
        if not fields.get("source"):
            fields.pop("source", None)
        event_send(
            team=self.team,
            name=name,
            properties=properties,
            email=email,
            user_id=user_id,
            contact_fields=fields,
            contact_properties=custom,
            mailing_lists=validated.get("mailingLists"),
        )
        return Response({"success": True})


class TransactionalView(ApiView):
    @extend_schema(
        parameters=[
            OpenApiParameter("perPage", OpenApiTypes.INT, required=False, description="From 10 to 50; 20 if absent."),
            OpenApiParameter("cursor", OpenApiTypes.STR, required=False, description="`pagination.nextCursor`."),
        ],
        responses={200: s.TransactionalPageSerializer, **ERRORS},
        summary="List transactional emails",
        description="The team's transactional emails, newest first, in Loops' shape.",
    )
    def get(self, request):
        emails = TransactionalEmail.objects.filter(team=self.team)
        rows, page = _page(emails.only("public_id", "name", "updated_at", "required_variables"), request)
        total = emails.count()
        next_page = None
        if page["nextCursor"]:
            query = urlencode({"cursor": page["nextCursor"], "perPage": page["perPage"]})
            next_page = request.build_absolute_uri(f"{request.path}?{query}")
        pagination = {
            "totalResults": total,
            "returnedResults": page["returnedResults"],
            "perPage": page["perPage"],
            "totalPages": math.ceil(total / page["perPage"]),
            "nextCursor": page["nextCursor"],
            "nextPage": next_page,
        }
        data = [
            {
                "id": t.public_id,
                "name": t.name,
                "lastUpdated": _loops_time(t.updated_at),
                "dataVariables": list(t.required_variables or []),
            }
            for t in rows
        ]
        return Response({"pagination": pagination, "data": data})

    @extend_schema(
        request=s.TransactionalSerializer,
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False)],
        responses={200: s.SuccessSerializer, **ERRORS},
    )
    def post(self, request):
        return self.dispatch_idempotent(self._send)

    def _send(self):
        params = s.TransactionalSerializer(data=self.data_object())
        params.is_valid(raise_exception=True)
        data = params.validated_data
        if data.get("attachments"):
            raise exceptions.ValidationError({"attachments": "Attachments are not supported."})
        transactional = TransactionalEmail.objects.filter(team=self.team, public_id=data["transactionalId"]).first()
        if transactional is None:
            raise exceptions.NotFound("Transactional email not found.")
        transactional_send(
            transactional=transactional,
            to_email=data["email"],
            data=data.get("dataVariables") or {},
            add_to_audience=bool(data.get("addToAudience")),
        )
        return Response({"success": True})


class EventListView(ApiView):
    @extend_schema(
        parameters=[
            OpenApiParameter("email", OpenApiTypes.EMAIL, required=False),
            OpenApiParameter("name", OpenApiTypes.STR, required=False),
            OpenApiParameter("after", OpenApiTypes.DATETIME, required=False, description="Only events after this."),
            OpenApiParameter("perPage", OpenApiTypes.INT, required=False),
            OpenApiParameter("cursor", OpenApiTypes.STR, required=False),
        ],
        responses={200: s.EventPageSerializer, **ERRORS},
        summary="The team's events, newest first",
    )
    def get(self, request):
        # Live events only: the API works with live data (test-mode events are the app's "Test data").
        events = Event.objects.filter(team=self.team, livemode=True).select_related("contact")
        email, name, after = (request.query_params.get(k, "").strip() for k in ("email", "name", "after"))
        if email:
            contact = contact_find(team=self.team, email=email)
            events = events.filter(contact=contact) if contact else events.none()
        if name:
            events = events.filter(name=name)
        if after:
            try:
                moment = datetime.fromisoformat(after.replace("Z", "+00:00"))
            except ValueError:
                raise exceptions.ValidationError({"after": "An ISO 8601 date and time."}) from None
            if timezone.is_naive(moment):
                moment = timezone.make_aware(moment, UTC)
            try:  # PostgreSQL takes offsets up to 15:59; Python's go to 23:59
                moment = moment.astimezone(UTC)
            except OverflowError:  # 0001-01-01T00:00-01:00 is before the first UTC moment
                raise exceptions.ValidationError({"after": "A date and time from year 1 to 9999."}) from None
            events = events.filter(created_at__gt=moment)
        rows, pagination = _page(events, request)
        data = [
            {
                "id": str(e.pk),
                "eventName": e.name,
                "email": e.contact.email,
                "userId": e.contact.user_id or None,
                "eventProperties": e.properties,
                "source": e.source,
                "occurredAt": e.occurred_at.isoformat(),
                "createdAt": e.created_at.isoformat(),
            }
            for e in rows
        ]
        return Response({"success": True, "data": data, "pagination": pagination})


class DeliveryListView(ApiView):
    @extend_schema(
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=list(Delivery.Status.values), required=False),
            OpenApiParameter("perPage", OpenApiTypes.INT, required=False),
            OpenApiParameter("cursor", OpenApiTypes.STR, required=False),
        ],
        responses={200: s.DeliveryPageSerializer, **ERRORS},
        summary="The team's webhook log, newest first",
    )
    def get(self, request):
        deliveries = Delivery.objects.filter(team=self.team).select_related("endpoint")
        status = request.query_params.get("status", "")
        if status:
            if status not in Delivery.Status.values:
                raise exceptions.ValidationError({"status": f"One of {', '.join(Delivery.Status.values)}."})
            deliveries = deliveries.filter(status=status)
        rows, pagination = _page(deliveries.defer("payload"), request)
        data = [
            {
                "id": str(d.pk),
                "endpoint": d.endpoint.name,
                "stripeEventId": d.stripe_event_id,
                "type": d.event_type,
                "status": d.status,
                "reason": d.ignored_reason,
                "error": d.last_error,
                "receivedAt": d.received_at.isoformat(),
                "processedAt": d.processed_at.isoformat() if d.processed_at else None,
                "livemode": d.livemode,
            }
            for d in rows
        ]
        return Response({"success": True, "data": data, "pagination": pagination})
