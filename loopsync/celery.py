import os

from celery import Celery
from celery.signals import task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loopsync.settings")

app = Celery("loopsync")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _reuse_database_connections(sender, **kwargs):
    # Celery's Django fixup closes the database connection around every task unless this is set (it
    # ignores CONN_MAX_AGE); reconnecting per task cost more than the work of most tasks here.
    sender.conf["CELERY_DB_REUSE_MAX"] = 1000


@task_prerun.connect
def _drop_broken_connections(task=None, **kwargs):
    # With reuse, a connection the database dropped (a restart) must not fail the tasks that follow.
    # Not for tasks run eagerly: they share the caller's connection and transaction.
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
