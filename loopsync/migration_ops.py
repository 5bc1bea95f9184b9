"""Migration operations for large, busy tables on PostgreSQL, which leave the table open to writes while they
work; on another database (SQLite, development) each is the plain Django operation it stands for.

- `AddConcurrently`: an index, or a partial unique constraint (which PostgreSQL makes a unique index), built
  CONCURRENTLY. A migration using it must be `atomic = False`.
- `AddCheckNotValid`: a CHECK constraint added NOT VALID (a moment's lock, no scan), then validated (a scan that
  lets writes through). In a `atomic = False` migration, so that the two are committed one after the other.
"""

from django.db import migrations


def _postgresql(schema_editor) -> bool:
    return schema_editor.connection.vendor == "postgresql"


class _Add(migrations.operations.base.Operation):
    reduces_to_sql = False
    reversible = True

    def __init__(self, model_name: str, index=None, constraint=None):
        self.model_name, self.index, self.constraint = model_name, index, constraint

    def deconstruct(self):
        kwargs = {"model_name": self.model_name}
        kwargs.update({"index": self.index} if self.index is not None else {"constraint": self.constraint})
        return self.__class__.__name__, [], kwargs

    def _plain(self):
        if self.index is not None:
            return migrations.AddIndex(model_name=self.model_name, index=self.index)
        return migrations.AddConstraint(model_name=self.model_name, constraint=self.constraint)

    @property
    def _name(self) -> str:
        return (self.index or self.constraint).name

    def state_forwards(self, app_label, state):
        self._plain().state_forwards(app_label, state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        self._plain().database_backwards(app_label, schema_editor, from_state, to_state)


class AddConcurrently(_Add):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if not _postgresql(schema_editor):
            return self._plain().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.index is not None:
            schema_editor.add_index(model, self.index, concurrently=True)
            return None
        sql = str(self.constraint.create_sql(model, schema_editor))
        if not sql.startswith("CREATE UNIQUE INDEX"):
            raise ValueError(f"{self._name}: only a partial unique constraint is a unique index to build concurrently")
        schema_editor.execute(sql.replace("CREATE UNIQUE INDEX", "CREATE UNIQUE INDEX CONCURRENTLY", 1))
        return None

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if not _postgresql(schema_editor):
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(self._name)}")
        return None

    def describe(self):
        return f"Add {self._name} (concurrently on PostgreSQL)"


class AddCheckNotValid(_Add):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if not _postgresql(schema_editor):
            return self._plain().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        table = schema_editor.quote_name(model._meta.db_table)
        schema_editor.execute(f"{self.constraint.create_sql(model, schema_editor)} NOT VALID")
        schema_editor.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {schema_editor.quote_name(self._name)}")
        return None

    def describe(self):
        return f"Add {self._name} (NOT VALID, then validated, on PostgreSQL)"
