"""loopsync.migration_ops on PostgreSQL: what the migrations built that way is what Django would have built, valid."""

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's catalog")

    def query(sql: str, *params):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    return query


@pytest.mark.parametrize("name", ["contact_unsubscribed_by_valid", "contact_subscribed_has_no_unsubscribe"])
def test_a_check_added_not_valid_was_validated(catalog, name):
    assert catalog("SELECT convalidated FROM pg_constraint WHERE conname = %s", name) == [(True,)]


@pytest.mark.parametrize(
    "name, unique",
    [("email_tracking_token_uniq", True), ("email_team_sent_idx", False), ("email_provider_id_idx", False)],
)
def test_an_index_built_concurrently_is_valid_and_as_declared(catalog, name, unique):
    rows = catalog(
        "SELECT i.indisvalid, i.indisunique, pg_get_expr(i.indpred, i.indrelid) IS NOT NULL FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s",
        name,
    )
    assert rows == [(True, unique, True)]  # valid, unique or not, partial
