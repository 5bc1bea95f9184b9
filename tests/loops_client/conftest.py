import pytest
from django.conf import settings as django_settings


@pytest.fixture
def pipeline(live_server, smtp_server, settings, request):
    """The real pipeline behind the live server, with its email going to a real SMTP server: tasks in-process
    without a broker, the session's Celery worker on Redis when one is configured (CI)."""
    if not django_settings.CELERY_TASK_ALWAYS_EAGER:
        request.getfixturevalue("celery_worker")
    settings.SITE_URL = live_server.url
    settings.API_RATE_LIMIT = 1000  # the clients make well over 10 calls a second (counted in Redis in CI)
    return smtp_server
