"""The email provider's tracking webhooks (django-anymail: /anymail/<provider>/tracking/), and what their events do.

anymail normalizes each provider's events and sends `anymail.signals.tracking`; `tracking_received` hands each to
`loops.services.provider_event_record`. The views are served only when ANYMAIL_WEBHOOK_SECRET is set (HTTP basic
auth in the URL the provider posts to): anymail would otherwise take anyone's posts, and a forged bounce would
unsubscribe a contact. Without it they answer 404; there is no switch to go without it. Every provider's address
is mounted, so one this installation has not set up (anymail refuses to build its view: a signing key missing, its
package not installed) answers 404 too, before anything is read, never a 500.
"""

import logging
from functools import wraps

from anymail.urls import urlpatterns as anymail_urlpatterns
from anymail.utils import get_anymail_setting
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.http import Http404, HttpResponse
from django.urls import URLPattern
from django.views.decorators.csrf import csrf_exempt

from . import services

logger = logging.getLogger(__name__)


def tracking_received(sender, event, esp_name: str, **kwargs) -> None:
    outcome = services.provider_event_record(event=event, esp_name=esp_name)
    logger.info("%s %s event for message %s: %s", esp_name, event.event_type, event.message_id, outcome)


def _secret_set() -> bool:
    return bool(get_anymail_setting("webhook_secret", default=None))


def _guarded(view):
    @wraps(view)
    def guarded(request, *args, **kwargs):
        if not _secret_set():
            raise Http404("Provider webhooks are off: ANYMAIL_WEBHOOK_SECRET is not set.")
        try:
            return view(request, *args, **kwargs)
        except ImproperlyConfigured as exc:  # anymail's: what the setting or package is is no secret
            logger.warning("A provider webhook was refused: %s", exc)
            return HttpResponse(
                "This provider's webhook is not set up on this installation.", status=404, content_type="text/plain"
            )
        except DatabaseError:  # the provider retries a 5xx later; nothing was recorded
            logger.warning("A provider webhook could not be recorded now (database error).", exc_info=True)
            return HttpResponse("Could not record this now; try again.", status=503, content_type="text/plain")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # a body not in the provider's format
            logger.warning("A provider webhook could not be read: %s", type(exc).__name__)
            return HttpResponse("The request could not be read.", status=400, content_type="text/plain")

    return csrf_exempt(guarded)


urlpatterns = [
    URLPattern(pattern.pattern, _guarded(pattern.callback), pattern.default_args, pattern.name)
    for pattern in anymail_urlpatterns
    if isinstance(pattern, URLPattern) and str(pattern.name or "").endswith("_tracking_webhook")
]
