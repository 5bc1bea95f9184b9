"""`GET /api/v1/transactional`: Loops' list of transactional emails, in Loops' shape, paged by cursor."""

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from rest_framework.test import APIClient

from loops.models import TransactionalEmail

pytestmark = pytest.mark.django_db

URL = "/api/v1/transactional"


def body(response) -> dict:
    assert response.status_code == 200, response.content
    return json.loads(response.content)


@pytest.fixture
def emails(team, other_team):
    """25 of the team's transactional emails (and two of another team's)."""
    made = [
        TransactionalEmail.objects.create(
            team=team,
            public_id=f"t-{index:02d}",
            name=f"Email {index}",
            subject="Hi",
            body="Hello",
            required_variables=["name", "url"] if index == 0 else [],
        )  # fmt: skip
        for index in range(25)
    ]
    for index in range(2):
        TransactionalEmail.objects.create(team=other_team, public_id=f"g-{index}", name="Globex", subject="x", body="x")
    return made


def test_the_list_is_in_loops_shape(api, emails):
    page = body(api.get(URL))
    assert list(page) == ["pagination", "data"]
    assert list(page["pagination"]) == [
        "totalResults", "returnedResults", "perPage", "totalPages", "nextCursor", "nextPage",
    ]  # fmt: skip
    assert {k: v for k, v in page["pagination"].items() if not k.startswith("next")} == {
        "totalResults": 25, "returnedResults": 20, "perPage": 20, "totalPages": 2,
    }  # fmt: skip
    first = emails[0]
    [row] = [row for row in body(api.get(URL, {"perPage": "50"}))["data"] if row["id"] == first.public_id]
    assert set(row) == {"id", "name", "lastUpdated", "dataVariables"}
    assert (row["name"], row["dataVariables"]) == ("Email 0", ["name", "url"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", row["lastUpdated"])
    assert row["lastUpdated"].startswith(first.updated_at.strftime("%Y-%m-%dT%H:%M:%S"))


def test_paging_past_page_two_lists_every_email_once(api, emails):
    seen, pages, params = [], 0, {"perPage": "10"}
    while True:
        page = body(api.get(URL, params))
        pages += 1
        pagination = page["pagination"]
        assert (pagination["totalResults"], pagination["totalPages"], pagination["perPage"]) == (25, 3, 10)
        assert pagination["returnedResults"] == len(page["data"])
        seen += [row["id"] for row in page["data"]]
        if pagination["nextCursor"] is None:
            assert pagination["nextPage"] is None
            break
        # nextPage is the full address of the next page: following it gives what the cursor gives.
        next_page = urlsplit(pagination["nextPage"])
        assert next_page.path == URL
        assert parse_qs(next_page.query) == {"cursor": [pagination["nextCursor"]], "perPage": ["10"]}
        params = {key: values[0] for key, values in parse_qs(next_page.query).items()}
    assert pages == 3
    assert seen == [f"t-{index:02d}" for index in reversed(range(25))]  # newest first, each once


def test_another_teams_emails_never_appear(api, other_api, emails):
    for params in ({"perPage": "50"}, {"perPage": "10"}):
        ids = [row["id"] for row in body(api.get(URL, params))["data"]]
        assert not [i for i in ids if i.startswith("g-")]
    theirs = body(other_api.get(URL))
    assert [row["id"] for row in theirs["data"]] == ["g-1", "g-0"]
    assert theirs["pagination"]["totalResults"] == 2
    # A cursor from one team's list shows the other team nothing of the first's.
    cursor = body(api.get(URL, {"perPage": "10"}))["pagination"]["nextCursor"]
    assert {row["id"] for row in body(other_api.get(URL, {"cursor": cursor}))["data"]} <= {"g-0", "g-1"}


def test_an_empty_list(api, team):
    assert body(api.get(URL)) == {
        "pagination": {
            "totalResults": 0, "returnedResults": 0, "perPage": 20, "totalPages": 0, "nextCursor": None,
            "nextPage": None,
        },
        "data": [],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("params", "field"), [({"perPage": "9"}, "perPage"), ({"perPage": "51"}, "perPage"), ({"cursor": "%%"}, "cursor")]
)
def test_bad_paging_is_a_400(api, emails, params, field):
    response = api.get(URL, params)
    assert response.status_code == 400
    assert json.loads(response.content)["message"].startswith(f"{field}:")


def test_the_list_needs_a_key(db):
    response = APIClient().get(URL)
    assert response.status_code == 401 and json.loads(response.content)["message"] == "Invalid API key"
