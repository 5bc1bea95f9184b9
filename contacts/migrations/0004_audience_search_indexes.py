"""Indexes for the Audience page on large teams (measured by bench/audience.py, see bench/README.md).

On every database (declared in Contact.Meta.indexes):
- contact_team_source_idx: the list filtered by source, newest first, and the list of a team's sources
  (contacts.selectors.audience_sources walks its (team, source) prefix, one probe per source).
- contact_team_unsub_idx: the list filtered to unsubscribed contacts, newest first (partial, so small).

On PostgreSQL only (plain SQL below; on SQLite, the default of `make run` and `make test`, it does nothing):
- Trigram GIN indexes for the search. Django renders `email__icontains=q` as
  `UPPER("contacts_contact"."email"::text) LIKE UPPER('%q%')`: these indexes are on exactly those expressions,
  so the planner can answer a search of 3 characters or more with a BitmapOr of the three.
- contact_email_prefix_idx: a btree for `email__istartswith` (`UPPER(email::text) LIKE 'AB%'`), the search of 1
  or 2 characters; text_pattern_ops because LIKE cannot use a btree of a non-C collation.
- A larger statistics sample on those expressions, so the planner's guess of how many contacts a term matches
  (and so the choice between walking the newest-first index and using these) is close.

`CREATE EXTENSION pg_trgm` needs a superuser, or, since PostgreSQL 13 (pg_trgm is a trusted extension), a role
with CREATE on the database. The `postgres` user of CI and the benchmarks is a superuser; elsewhere, have an
administrator run `CREATE EXTENSION IF NOT EXISTS pg_trgm;` in the database once before migrating.

The builds hold a SHARE lock on contacts_contact (reads go on, writes wait): a few seconds per index per million
contacts on a 2-core machine. On a large production table, create them beforehand with the same statements and
CONCURRENTLY; `IF NOT EXISTS` then makes this migration skip them.
"""

from django.db import migrations, models

TRIGRAM = "USING gin ((UPPER({column}::text)) gin_trgm_ops)"
# name -> definition after ON contacts_contact. The expressions must stay exactly what Django emits.
POSTGRESQL_INDEXES = {
    "contact_email_trgm_idx": TRIGRAM.format(column="email"),
    "contact_first_name_trgm_idx": TRIGRAM.format(column="first_name"),
    "contact_last_name_trgm_idx": TRIGRAM.format(column="last_name"),
    "contact_email_prefix_idx": "(team_id, (UPPER(email::text)) text_pattern_ops)",
}
# (index, column number of the expression): ANALYZE samples 300 × this many rows; the default target is 100.
STATISTICS = [
    ("contact_email_trgm_idx", 1),
    ("contact_first_name_trgm_idx", 1),
    ("contact_last_name_trgm_idx", 1),
    ("contact_email_prefix_idx", 2),
]
STATISTICS_TARGET = 1000


def create_postgresql_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, definition in POSTGRESQL_INDEXES.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON contacts_contact {definition}")
    for name, column in STATISTICS:
        schema_editor.execute(f"ALTER INDEX {name} ALTER COLUMN {column} SET STATISTICS {STATISTICS_TARGET}")


def drop_postgresql_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in POSTGRESQL_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")
    # The extension stays: something else may use it, and dropping it needs the rights creating it needed.


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0002_invitation'),
        ('contacts', '0003_mailing_lists_and_properties'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='contact',
            index=models.Index(fields=['team', 'source', '-created_at', '-id'], name='contact_team_source_idx'),
        ),
        migrations.AddIndex(
            model_name='contact',
            index=models.Index(condition=models.Q(('subscribed', False)), fields=['team', '-created_at', '-id'], name='contact_team_unsub_idx'),
        ),
        migrations.RunPython(create_postgresql_indexes, drop_postgresql_indexes, elidable=False),
    ]
