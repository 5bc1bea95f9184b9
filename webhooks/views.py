import logging
from uuid import UUID

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .services import receiving

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def stripe_receive(request: HttpRequest, endpoint_uuid: UUID) -> JsonResponse:
    """Stripe posts here. Verify, store, answer; the work happens in a worker."""
    limit = settings.WEBHOOK_MAX_BODY_BYTES
    try:
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        body = b"" if declared > limit else request.read(limit + 1)
        if declared > limit or len(body) > limit:
            raise receiving.WebhookRejected(413, f"The body is larger than {limit} bytes.")
        received = receiving.delivery_receive(
            endpoint_uuid=endpoint_uuid, body=body, signature=request.headers.get("Stripe-Signature")
        )
    except receiving.WebhookRejected as exc:
        # For the operator: why Stripe (or someone else) was refused. The message names the problem, never the
        # secret, and quotes nothing of the body but a field's name.
        logger.info("Webhook for endpoint %s refused (%s): %s", endpoint_uuid, exc.status, exc.message)
        return JsonResponse({"error": exc.message}, status=exc.status)
    answer = {"status": received.status}
    if received.reason:
        answer["reason"] = received.reason
    return JsonResponse(answer)
