"""Links that leave the page: in emails, for Stripe, for an app's configuration. They are built from SITE_URL,
the installation's public address, not from the request: behind a proxy (or on a second port) the request's
own host and scheme are not what Stripe, a mail client or another server must use."""

from django.conf import settings


def absolute_url(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path
