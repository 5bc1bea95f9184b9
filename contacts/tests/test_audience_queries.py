"""The Audience's queries as they are built for large teams (bench/audience.py times them over 1,000,000
contacts): short search terms, the list of sources, the keyset bound, and on PostgreSQL the indexes the search
needs."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from contacts.models import Contact
from contacts.selectors import SOURCES_MAX, AudienceFilter, audience_page, audience_queryset, audience_sources

pytestmark = pytest.mark.django_db


def emails(team, **filters) -> set[str]:
    return {c.email for c in audience_page(team=team, filters=AudienceFilter(**filters)).contacts}


@pytest.fixture
def people(team):
    rows = [
        ("alice@example.com", "Alice", "Smith"),
        ("sally@example.com", "Sally", "Ward"),
        ("al.jones@example.com", "", ""),
        ("bob@example.com", "Bob", "Alvarez"),
        ("mal@example.com", "Mal", "Reynolds"),
    ]
    Contact.objects.bulk_create(Contact(team=team, email=e, first_name=f, last_name=last) for e, f, last in rows)


def test_a_term_of_one_or_two_characters_matches_the_start_of_an_email_or_name(team, people):
    assert emails(team, q="al") == {"alice@example.com", "al.jones@example.com", "bob@example.com"}
    assert emails(team, q=" AL ") == emails(team, q="al")
    assert emails(team, q="a") == {"alice@example.com", "al.jones@example.com", "bob@example.com"}
    assert emails(team, q="s") == {"sally@example.com", "alice@example.com"}  # Smith


def test_a_term_of_three_characters_or_more_matches_anywhere(team, people):
    assert emails(team, q="all") == {"sally@example.com"}
    assert emails(team, q="al@") == {"mal@example.com"}
    assert emails(team, q="AL.J") == {"al.jones@example.com"}
    assert emails(team, q="example") == {
        "alice@example.com",
        "sally@example.com",
        "al.jones@example.com",
        "bob@example.com",
        "mal@example.com",
    }


def test_the_page_shows_the_short_term_behaviour(client, user, team, people):
    client.force_login(user)
    body = client.get(reverse("contacts:list"), {"q": "al"}).content.decode()
    assert "alice@example.com" in body and "sally@example.com" not in body


def test_sources_are_the_distinct_non_empty_sources_in_order_as_select_distinct_gave(team, other_team):
    sources = ["stripe", "api", "stripe", "", "import", "form", "api", "zapier", ""]
    Contact.objects.bulk_create(Contact(team=team, email=f"c{i}@example.com", source=s) for i, s in enumerate(sources))
    Contact.objects.create(team=other_team, email="x@globex.test", source="secret-source")
    distinct = list(
        Contact.objects.filter(team=team).exclude(source="").order_by("source").values_list("source", flat=True)
    )
    expected = list(dict.fromkeys(distinct))
    assert audience_sources(team=team) == expected == ["api", "form", "import", "stripe", "zapier"]
    assert audience_sources(team=other_team) == ["secret-source"]


def test_sources_stop_at_the_maximum_and_are_empty_for_an_empty_team(team, other_team):
    Contact.objects.bulk_create(
        Contact(team=team, email=f"c{i}@example.com", source=f"source-{i:03}") for i in range(SOURCES_MAX + 10)
    )
    assert audience_sources(team=team) == [f"source-{i:03}" for i in range(SOURCES_MAX)]
    assert audience_sources(team=other_team) == []


def test_oldest_first_keyset_pages_walk_every_contact_once_in_order(team):
    now = timezone.now()
    contacts = Contact.objects.bulk_create(Contact(team=team, email=f"c{i:03}@example.com") for i in range(120))
    for i, contact in enumerate(contacts):  # three contacts per second, to test the id tie-break
        Contact.objects.filter(pk=contact.pk).update(created_at=now + timedelta(seconds=i // 3))
    seen, cursor = [], ""
    while True:
        page = audience_page(team=team, filters=AudienceFilter(oldest_first=True), cursor=cursor)
        seen += [c.email for c in page.contacts]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == [f"c{i:03}@example.com" for i in range(120)]


def index_expressions() -> dict[str, str]:
    """Index name -> definition, for the contacts table."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'contacts_contact'")
        return dict(cursor.fetchall())


@pytest.mark.django_db(transaction=True)  # VACUUM cannot run in the test's transaction
def test_on_postgresql_the_search_uses_its_indexes(postgres, team, other_team):
    """The indexes are on the expressions Django emits (UPPER(col::text) LIKE …): when a lookup changes, this
    fails instead of the search silently reading every contact."""
    indexes = index_expressions()
    trigram = {"contact_email_trgm_idx", "contact_first_name_trgm_idx", "contact_last_name_trgm_idx"}
    assert trigram | {"contact_email_prefix_idx", "contact_team_source_idx", "contact_team_unsub_idx"} <= set(indexes)
    assert "gin_trgm_ops" in indexes["contact_email_trgm_idx"]

    Contact.objects.bulk_create(
        Contact(team=t, email=f"person{i}@example.com", first_name=f"First{i}", last_name=f"Last{i}")
        for t in (team, other_team)
        for i in range(3000)
    )
    Contact.objects.create(team=team, email="ada@lovelace.test", first_name="Ada", last_name="Lovelace")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE contacts_contact")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # the table is small: only whether an index can serve
        cursor.execute("SET LOCAL enable_indexscan = off")
        substring = audience_queryset(team=team, filters=AudienceFilter(q="lovelace")).explain()
        prefix = audience_queryset(team=team, filters=AudienceFilter(q="ad")).explain()
    assert all(f"Bitmap Index Scan on {name}" in substring for name in trigram), substring
    assert "Bitmap Index Scan on contact_email_prefix_idx" in prefix, prefix
    assert emails(team, q="lovelace") == emails(team, q="ad") == {"ada@lovelace.test"}
