import pytest
from rest_framework.test import APIClient

from api.services import api_key_create


@pytest.fixture(autouse=True)
def _generous_rate_limit(settings):
    settings.API_RATE_LIMIT = 10_000  # the rate-limit tests set their own


@pytest.fixture
def key(team):
    return api_key_create(team=team, name="test").key


@pytest.fixture
def other_key(other_team):
    return api_key_create(team=other_team, name="other").key


@pytest.fixture
def api(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def other_api(other_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {other_key}")
    return client
