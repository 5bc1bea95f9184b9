from uuid import UUID

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .services import receiving


@csrf_exempt
@require_POST
def stripe_receive(request: HttpRequest, endpoint_uuid: UUID) -> JsonResponse:
    """Stripe posts here. Verify, store, answer; the work happens in a worker.

    In production the WSGI application answers these POSTs before Django's request handling
    (webhooks/wsgi.py) with the same `receiving.webhook_answer`; this view serves them under ASGI
    and the test client, and answers 405 to other methods."""
    status, answer = receiving.webhook_answer(
        endpoint_uuid=endpoint_uuid,
        read=request.read,
        declared_length=request.META.get("CONTENT_LENGTH"),
        signature=request.headers.get("Stripe-Signature"),
    )
    return JsonResponse(answer, status=status)
