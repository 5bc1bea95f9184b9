import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loopsync.settings")
django_application = get_wsgi_application()

from webhooks.wsgi import StripeWebhooks  # noqa: E402 - needs the apps loaded (get_wsgi_application sets them up)

# Stripe's webhooks are answered before Django's middleware and URL resolver (webhooks/wsgi.py); the rest is Django.
application = StripeWebhooks(django_application)
