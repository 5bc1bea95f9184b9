"""What every /api/v1/ view shares: the key, the rate limit, the body limit, idempotency."""

from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import APIView

from loopsync import jsonsafe

from . import ratelimit
from .auth import BearerKeyAuthentication, HasApiKey
from .errors import HANDLED, PayloadTooLarge, error_response
from .models import IdempotencyRecord
from .parsers import MAX_DEPTH

IDEMPOTENCY_WINDOW = timedelta(hours=24)
# A claim older than this with no answer belongs to a request that died (longer than any worker timeout).
ABANDONED_AFTER = timedelta(minutes=5)


class ApiView(APIView):
    authentication_classes = [BearerKeyAuthentication]
    permission_classes = [HasApiKey]
    metadata_class = None  # OPTIONS is a 405 like any other undocumented method
    # POST views that honour an `Idempotency-Key` header (events/send, transactional).
    idempotent = False

    @property
    def team(self):
        return self.request.auth.team

    def initial(self, request, *args, **kwargs):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.API_MAX_BODY_BYTES:
            raise PayloadTooLarge(f"The request body is over {settings.API_MAX_BODY_BYTES:,} bytes.")
        super().initial(request, *args, **kwargs)
        for name, value in request.query_params.items():
            if "\x00" in value or "\x00" in name:
                raise exceptions.ValidationError({_printable(name): "Null characters are not allowed."})

    def check_throttles(self, request):
        quota = ratelimit.hit(request.auth.team_id)
        request.quota = quota
        if not quota.allowed:
            raise exceptions.Throttled(detail=f"Rate limit of {quota.limit} requests per second exceeded.")

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        quota = getattr(request, "quota", None)
        if quota is not None:
            response["x-ratelimit-limit"] = str(quota.limit)
            response["x-ratelimit-remaining"] = str(quota.remaining)
        return response

    def data_object(self) -> dict:
        """The JSON body, which must be an object holding nothing PostgreSQL would refuse."""
        data = self.request.data
        if not isinstance(data, dict):
            raise exceptions.ValidationError("The body must be a JSON object.")
        bad = jsonsafe.find(data, max_depth=MAX_DEPTH)
        if bad is not None:
            raise exceptions.ValidationError({bad[0] or "body": bad[1]})
        return data

    def dispatch_idempotent(self, handler):
        """Run `handler()` once per `Idempotency-Key` within 24 hours; a repeat gets the first answer.
        The key is claimed (a row) before the work, so two concurrent repeats cannot both run it."""
        key = self.request.headers.get("Idempotency-Key", "").strip()
        if not key:
            return handler()
        if len(key) > 100:
            raise exceptions.ValidationError({"Idempotency-Key": "At most 100 characters."})
        team = self.team
        IdempotencyRecord.objects.filter(
            team=team, key=key, created_at__lt=timezone.now() - IDEMPOTENCY_WINDOW
        ).delete()
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(team=team, key=key, path=self.request.path)
        except IntegrityError:
            first = IdempotencyRecord.objects.filter(team=team, key=key).first()
            if first is not None and first.status_code == 0 and first.created_at < timezone.now() - ABANDONED_AFTER:
                # Its request died without an answer (a killed worker): free the key and try again.
                IdempotencyRecord.objects.filter(pk=first.pk, status_code=0).delete()
                return self.dispatch_idempotent(handler)
            if first is None or first.status_code == 0:
                return error_response("A request with this Idempotency-Key is still being handled.", 409)
            if first.path != self.request.path:
                return error_response("This Idempotency-Key was used for another endpoint.", 409)
            response = Response(first.body, status=first.status_code)
            response["Idempotent-Replayed"] = "true"
            return response
        try:
            response = handler()
        except HANDLED as exc:
            response = self.handle_exception(exc)
        except BaseException:  # a crash or a worker timeout (SystemExit) answered nothing: free the key
            IdempotencyRecord.objects.filter(pk=record.pk).delete()
            raise
        if response.status_code >= 500:
            record.delete()
            return response
        try:
            with transaction.atomic():
                IdempotencyRecord.objects.filter(pk=record.pk).update(
                    status_code=response.status_code, body=response.data
                )
        except DatabaseError:  # an answer the database cannot keep: answer anyway, and free the key
            IdempotencyRecord.objects.filter(pk=record.pk).delete()
        return response


def _printable(text: str) -> str:
    """A name quoted back in an error message, without the null character that made it wrong."""
    return text.replace("\x00", "\\u0000")
