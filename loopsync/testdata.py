"""The "Test data" switch of the Audience and Events pages: `?test=1` shows what Stripe test-mode events
synced (test contacts and their events), kept apart from live data everywhere else."""

from django.http import HttpRequest

PARAM = "test"


def test_data_requested(request: HttpRequest) -> bool:
    return request.GET.get(PARAM) == "1"
