"""LoopSync settings, read from the environment (and `.env` when present).

Safe defaults for development; outside DEBUG, a missing secret or broker is a start-up error.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def _strict_bool(name: str, default: bool) -> bool:
    """A boolean from the environment; anything but a clear yes/no is an error, not False."""
    raw = env.str(name, default="")
    if raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use true or false.")


DEBUG = _strict_bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")

# The public address of this installation: unsubscribe links in emails point here.
SITE_URL = env.str("SITE_URL", default="")

if not DEBUG:
    required = (("SECRET_KEY", SECRET_KEY), ("CELERY_BROKER_URL", CELERY_BROKER_URL), ("SITE_URL", SITE_URL))
    missing = [name for name, value in required if not value]
    if missing:
        raise ImproperlyConfigured(
            f"DEBUG is off, so {', '.join(missing)} must be set. "
            "Production never falls back to an insecure key, to running tasks in the web process, or to "
            "unsubscribe links that point at localhost. "
            "For local development set DEBUG=true (see .env.example)."
        )
if not SECRET_KEY:
    # Development only (DEBUG is on): a fixed, obviously unsafe key.
    SECRET_KEY = "django-insecure-local-development-only"  # noqa: S105 - DEBUG only

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served from static/: the docs work offline
    "django_htmx",
    "loopsync.apps.LoopSyncConfig",
    "accounts",
    "contacts",
    "loops",
    "webhooks",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.CurrentTeamMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "loopsync.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.teams",
            ],
        },
    },
]

WSGI_APPLICATION = "loopsync.wsgi.application"
ASGI_APPLICATION = "loopsync.asgi.application"

# SQLite under var/ is the zero-setup default; DATABASE_URL switches to PostgreSQL.
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'loopsync.sqlite3'}")}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Let the in-process tasks and the request wait for each other instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Email: console by default; EMAIL_URL (e.g. smtp+tls://user:pass@host:587) for SMTP, or
# EMAIL_BACKEND=anymail.backends.<provider>.EmailBackend with ANYMAIL='{"POSTMARK_SERVER_TOKEN": "…"}'.
# Or the usual settings: EMAIL_HOST (then SMTP), EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD, EMAIL_USE_TLS.
_email = env.email_url("EMAIL_URL", default="smtp://" if env.str("EMAIL_HOST", default="") else "consolemail://")
vars().update(_email)
if not env.str("EMAIL_URL", default=""):
    EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
    EMAIL_PORT = env.int("EMAIL_PORT", default=25)
    EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
    EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
    EMAIL_USE_TLS = _strict_bool("EMAIL_USE_TLS", default=False)
    EMAIL_USE_SSL = _strict_bool("EMAIL_USE_SSL", default=False)
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default=_email["EMAIL_BACKEND"])
ANYMAIL = env.json("ANYMAIL", default={})
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="LoopSync <noreply@localhost>")
# Where links in emails (unsubscribe) point: the public address of this installation.
SITE_URL = SITE_URL or "http://127.0.0.1:8000"  # development only: DEBUG is on

# Celery. Without a broker (development only) tasks run in the web process, eagerly.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
if CELERY_TASK_ALWAYS_EAGER:
    CELERY_BROKER_URL = "memory://"  # never contacted: tasks run in-process
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="loopsync")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2}
# A webhook answers quickly even when the broker is down: the row is already stored and the
# sweeper re-enqueues it, so publishing gives up fast instead of holding the request.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.2}
CELERY_BEAT_SCHEDULE = {
    "webhooks-sweep-deliveries": {"task": "webhooks.tasks.sweep_deliveries", "schedule": 30.0},
    "loops-advance-due-runs": {"task": "loops.tasks.advance_due_runs", "schedule": 15.0},
    "loops-sweep-emails": {"task": "loops.tasks.sweep_emails", "schedule": 60.0},
}

# Webhooks
WEBHOOK_MAX_BODY_BYTES = 1024 * 1024
WEBHOOK_DEFAULT_TOLERANCE_SECONDS = 300

# Public API (/api/v1/, Loops-compatible)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "LoopSync API",
    "DESCRIPTION": "Loops-compatible v1 API: contacts, properties, mailing lists, events, transactional email; "
    "plus the team's events and webhook log. Authenticate with `Authorization: Bearer <key>` "
    "(Settings → API).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
API_RATE_LIMIT = env.int("API_RATE_LIMIT", default=10)  # requests per second per team
# Counted in Redis so every web worker shares the count: REDIS_URL, else the broker when it is Redis.
API_RATE_LIMIT_REDIS_URL = env.str(
    "REDIS_URL", default=CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else ""
)
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=1024 * 1024)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "mail.log": {"level": "WARNING"}},
}

if not DEBUG:
    SESSION_COOKIE_SECURE = _strict_bool("SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_CONTENT_TYPE_NOSNIFF = True
