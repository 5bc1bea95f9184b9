from uuid import UUID

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import services


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
            raise services.WebhookRejected(413, f"The body is larger than {limit} bytes.")
        received = services.delivery_receive(
            endpoint_uuid=endpoint_uuid, body=body, signature=request.headers.get("Stripe-Signature")
        )
    except services.WebhookRejected as exc:
        return JsonResponse({"error": exc.message}, status=exc.status)
    answer = {"status": received.status}
    if received.reason:
        answer["reason"] = received.reason
    return JsonResponse(answer)
