"""Every API error is `{"success": false, "message": "..."}` with the right status code."""

import logging

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from contacts.services import ContactConflict

from .parsers import TOO_DEEP

logger = logging.getLogger(__name__)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Conflict."


def _flatten(detail, prefix: str = "") -> list[str]:
    """DRF's nested error detail as "field: message" lines, the field path first."""
    if isinstance(detail, dict):
        lines = []
        for key, value in detail.items():
            name = "" if key in {"non_field_errors", "__all__"} else str(key)
            path = f"{prefix}.{name}" if prefix and name else (name or prefix)
            lines.extend(_flatten(value, path))
        return lines
    if isinstance(detail, list):
        return [line for item in detail for line in _flatten(item, prefix)]
    return [f"{prefix}: {detail}" if prefix else str(detail)]


# What the exception handler turns into an answer (anything else is a 500).
HANDLED = (exceptions.APIException, DjangoValidationError, Http404, PermissionDenied, ContactConflict)


def error_response(message: str, code: int, **extra) -> Response:
    return Response({"success": False, "message": message, **extra}, status=code)


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) if str(exc) else "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, ContactConflict):
        exc = Conflict(str(exc))
    response = drf_exception_handler(exc, context)
    if response is None:  # not an API error: a bug. Answer in the API's shape; the log has the traceback.
        logger.exception("API error", exc_info=exc)
        return error_response("Something went wrong on our side.", status.HTTP_500_INTERNAL_SERVER_ERROR)
    if isinstance(exc, exceptions.ValidationError):
        message = "; ".join(_flatten(exc.detail)) or "The request is not valid."
    elif isinstance(exc, exceptions.ParseError):
        message = TOO_DEEP if str(exc.detail) == TOO_DEEP else "The body is not valid JSON."
    elif isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        message = "Invalid API key"
    else:
        message = "; ".join(_flatten(exc.detail)) if hasattr(exc, "detail") else str(exc)
    response.data = {"success": False, "message": message}
    return response


def not_found(request, *args, **kwargs):
    """Unknown paths under /api/: JSON, not the site's HTML 404 page."""
    return JsonResponse({"success": False, "message": "No such API endpoint."}, status=404)
