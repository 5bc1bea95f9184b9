import logging
import os
import sys

from django.apps import AppConfig
from django.conf import settings

logger = logging.getLogger("loopsync")


class LoopSyncConfig(AppConfig):
    name = "loopsync"
    verbose_name = "LoopSync"

    def ready(self) -> None:
        # Say once, at start, that tasks run in-process. runserver starts twice (the reloader and the
        # server it watches); only the server (RUN_MAIN) says it. Other commands say nothing.
        serving = ("runserver" in sys.argv and os.environ.get("RUN_MAIN")) or "gunicorn" in sys.argv[0]
        if settings.CELERY_TASK_ALWAYS_EAGER and serving:
            logger.warning(
                "CELERY_BROKER_URL is not set: background and periodic tasks run in the web process (development mode)."
            )
            from . import inprocess

            inprocess.start()
