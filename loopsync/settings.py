"""LoopSync settings, read from the environment (and `.env` when present).

Safe defaults for development; outside DEBUG, a missing secret or broker is a start-up error.
"""

from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
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
    "axes",  # log-in throttling: failed attempts by account and by IP (see AXES_* below)
    "csp",  # the Content-Security-Policy header on every response (CONTENT_SECURITY_POLICY below)
    "loopsync.apps.LoopSyncConfig",
    "accounts",
    "contacts",
    "loops",
    "webhooks",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.CurrentTeamMiddleware",
    "accounts.middleware.TeamRequiredMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as axes asks: it turns a refused log-in into the lock-out page (AXES_LOCKOUT_CALLABLE).
    "axes.middleware.AxesMiddleware",
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

# Log-in throttling (django-axes), on /login/ and /admin/login/ alike: LOGIN_FAILURE_LIMIT failed attempts
# lock the account (from any address) and, separately, the client's IP address (for any account), until
# LOGIN_COOLOFF_MINUTES pass without a new failure. The lock-out page says which and when to retry (429).
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_COOLOFF_MINUTES = env.int("LOGIN_COOLOFF_MINUTES", default=15)
if LOGIN_FAILURE_LIMIT < 1 or LOGIN_COOLOFF_MINUTES < 1:
    raise ImproperlyConfigured("LOGIN_FAILURE_LIMIT and LOGIN_COOLOFF_MINUTES must be at least 1.")
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out log-in before any password is checked
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one locks: by account, and by IP
# Attempts made while locked are not counted, so the lock ends LOGIN_COOLOFF_MINUTES after the last counted
# failure, as the lock-out page says, however often the form is posted meanwhile.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_HANDLER = "accounts.login_throttle.LoginThrottleHandler"  # a success resets that account's failures only
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True  # no record of every successful log-in: only failures are needed, and they expire
AXES_LOCKOUT_CALLABLE = "accounts.login_throttle.lockout_response"
AXES_CLIENT_IP_CALLABLE = "accounts.login_throttle.client_ip"  # honours TRUSTED_PROXY_COUNT (below)

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
# The provider's tracking webhooks (/anymail/<provider>/tracking/: bounces, complaints) take a request only with
# this "user:password" as its HTTP basic auth (https://user:password@host/anymail/postmark/tracking/ in the
# provider's settings); without it they answer 404 (loops/provider_webhooks.py).
if env.str("ANYMAIL_WEBHOOK_SECRET", default=""):
    ANYMAIL["WEBHOOK_SECRET"] = env.str("ANYMAIL_WEBHOOK_SECRET")
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="LoopSync <noreply@localhost>")
# The From of a loop's or a transactional email must be on one of these domains (exact match, for every
# team), or on a domain the team verified in Settings → Sending. The operator's own domain is not
# allowed to tenants unless listed here; a blank From always sends as DEFAULT_FROM_EMAIL.
ALLOWED_SENDER_DOMAINS = [
    d.strip().lower().rstrip(".") for d in env.list("ALLOWED_SENDER_DOMAINS", default=[]) if d.strip()
]
# Where sender-domain verification looks up TXT records: "ip" or "ip:port" entries; empty = the system's resolver.
SENDER_DOMAIN_NAMESERVERS = env.list("SENDER_DOMAIN_NAMESERVERS", default=[])
# Verification runs in a worker (accounts.tasks), never in a web request: one lookup takes at most the
# timeout, and a domain is checked at most once per interval, however often Verify is pressed.
SENDER_DOMAIN_DNS_TIMEOUT = env.float("SENDER_DOMAIN_DNS_TIMEOUT", default=2.0)  # seconds for one verification
SENDER_DOMAIN_CHECK_INTERVAL = env.int("SENDER_DOMAIN_CHECK_INTERVAL", default=30)  # seconds between checks
if SENDER_DOMAIN_DNS_TIMEOUT <= 0 or SENDER_DOMAIN_CHECK_INTERVAL < 1:
    raise ImproperlyConfigured("SENDER_DOMAIN_DNS_TIMEOUT must be above 0 and SENDER_DOMAIN_CHECK_INTERVAL at least 1.")
SENDER_DOMAINS_MAX = env.int("SENDER_DOMAINS_MAX", default=20)  # domains per team
INVITATIONS_OPEN_MAX = env.int("INVITATIONS_OPEN_MAX", default=50)  # open invitations per team
# Where links in emails (unsubscribe) point: the public address of this installation.
SITE_URL = SITE_URL or "http://127.0.0.1:8000"  # development only: DEBUG is on

# Celery. Without a broker (development only) tasks run in the web process, eagerly.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
if CELERY_TASK_ALWAYS_EAGER:
    CELERY_BROKER_URL = "memory://"  # never contacted: tasks run in-process
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="loopsync")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# No acks_late and no Redis ack emulation: a task message is only a wake-up, the rows (claimed with leases)
# are the truth, and a message lost with a worker or with Redis is made up for by the sweeps (beat). With
# ack emulation, kombu 5.7's redis transport turns a Redis crash into a worker exit: the consumer detaches
# the transport from the broken connection (Connection.collect), then closes the channel, which restores
# the unacked messages through that transport and fails with an AttributeError that nothing catches
# ("'NoneType' object has no attribute 'hostname'"); an ack after the reconnection fails the same way.
# Without it, acks are kept in the worker's memory and a failed restore is only logged.
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2, "ack_emulation": False}
# A webhook answers quickly even when the broker is down: the row is already stored and the
# sweeper re-enqueues it, so publishing gives up fast instead of holding the request.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.2}
CELERY_BEAT_SCHEDULE = {
    "webhooks-sweep-deliveries": {"task": "webhooks.tasks.sweep_deliveries", "schedule": 30.0},
    "webhooks-sweep-stripe-syncs": {"task": "webhooks.tasks.sweep_stripe_syncs", "schedule": 60.0},
    "contacts-sweep-imports": {"task": "contacts.tasks.sweep_contact_imports", "schedule": 60.0},
    "loops-advance-due-runs": {"task": "loops.tasks.advance_due_runs", "schedule": 15.0},
    "loops-sweep-emails": {"task": "loops.tasks.sweep_emails", "schedule": 60.0},
}
# Every task is stopped past these (prefork pool): the soft limit raises SoftTimeLimitExceeded, which the
# drains answer by releasing what they claimed; the hard limit kills the worker process. A drain hands
# over after 20 s (DRAIN_BUDGET_SECONDS) but finishes the batch it started. A batch of runs takes no new
# run after a quarter of the soft limit (the rest go back, due), and a run renders for at most 5 s a turn
# before it is continued later (loops/services/runs.py), so a batch ends within about 20 + 30 + 5 + one render
# (at most 5 × LIQUID_RENDER_TIMEOUT on the clock) seconds: half the default soft limit.
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=120)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=150)
if not 0 < CELERY_TASK_SOFT_TIME_LIMIT < CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"CELERY_TASK_SOFT_TIME_LIMIT ({CELERY_TASK_SOFT_TIME_LIMIT}) must be above 0 and below "
        f"CELERY_TASK_TIME_LIMIT ({CELERY_TASK_TIME_LIMIT}): the soft limit lets a task release its work first."
    )

# Rendering a team's templates (loops/render_limits.py): each render of a subject, preview text or body
# is bounded, and going over fails it with a message naming the limit (refused on save, shown in the
# preview, recorded on the run or email). See "Limits" in the README.
# Seconds of processing (CPU) time to render one email; a save check gets half, and running out at send
# time is retried a few times before the run fails. No render takes over 5 times this on the clock.
LIQUID_RENDER_TIMEOUT = env.float("LIQUID_RENDER_TIMEOUT", default=1.0)
LIQUID_TEMPLATE_LIMIT = env.int("LIQUID_TEMPLATE_LIMIT", default=20_000)  # characters of one template's source
LIQUID_LOOP_LIMIT = env.int("LIQUID_LOOP_LIMIT", default=10_000)  # loop iterations per render; items in a list
LIQUID_OUTPUT_LIMIT = env.int("LIQUID_OUTPUT_LIMIT", default=256 * 1024)  # bytes one template renders; any value
LIQUID_NAMESPACE_LIMIT = env.int("LIQUID_NAMESPACE_LIMIT", default=256 * 1024)  # bytes in assign/capture variables
LIQUID_NESTING_LIMIT = env.int("LIQUID_NESTING_LIMIT", default=30)  # blocks inside blocks
# Bytes of an email's HTML part, layout included: Markdown can make many times what the template rendered.
EMAIL_HTML_LIMIT = env.int("EMAIL_HTML_LIMIT", default=1024 * 1024)
_render_limits = {
    "EMAIL_HTML_LIMIT": EMAIL_HTML_LIMIT,
    "LIQUID_RENDER_TIMEOUT": LIQUID_RENDER_TIMEOUT,
    "LIQUID_TEMPLATE_LIMIT": LIQUID_TEMPLATE_LIMIT,
    "LIQUID_LOOP_LIMIT": LIQUID_LOOP_LIMIT,
    "LIQUID_OUTPUT_LIMIT": LIQUID_OUTPUT_LIMIT,
    "LIQUID_NAMESPACE_LIMIT": LIQUID_NAMESPACE_LIMIT,
}
for _name, _value in _render_limits.items():
    if _value <= 0:
        raise ImproperlyConfigured(f"{_name}={_value} must be above 0: it bounds what a team's template may do.")
if not 1 <= LIQUID_NESTING_LIMIT <= 100:  # deeper nesting runs into Python's recursion limit
    raise ImproperlyConfigured(f"LIQUID_NESTING_LIMIT={LIQUID_NESTING_LIMIT} must be from 1 to 100.")
if LIQUID_RENDER_TIMEOUT * 20 > CELERY_TASK_SOFT_TIME_LIMIT:  # one render may take 5 times it (see above)
    raise ImproperlyConfigured(
        f"LIQUID_RENDER_TIMEOUT={LIQUID_RENDER_TIMEOUT:g} must be at most a twentieth of CELERY_TASK_SOFT_TIME_LIMIT "
        f"({CELERY_TASK_SOFT_TIME_LIMIT}), so that a batch of runs ends well within the task's time limit."
    )

# Webhooks
WEBHOOK_MAX_BODY_BYTES = 1024 * 1024
WEBHOOK_DEFAULT_TOLERANCE_SECONDS = 300
# Each web process keeps the endpoints it receives for in memory, asking the database at most once per endpoint
# per ENDPOINT_CACHE_SECONDS: a disabled or deleted endpoint, a new secret or a type ticked off takes effect in
# every process within that time (at once in the process that saved it).
ENDPOINT_CACHE_SECONDS = 0.5
ENDPOINT_CACHE_SIZE = 10_000  # endpoints (and unknown UUIDs) remembered per process

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
    "plus the team's events and webhook log. Contacts carry Stripe's billing state as built-in typed properties "
    "(subscriptionStatus, planName, planId, planInterval, planAmount, currency, mrr, trialEnd, currentPeriodEnd, "
    "canceledAt, cancelAtPeriodEnd, delinquent, ltv, lastPaymentAt, lastPaymentFailedAt), returned at the top "
    "level like custom ones. Authenticate with `Authorization: Bearer <key>` (Settings → API).",
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
# What one API request, and one team, may hold in custom properties and values (a 400 names the cap hit).
# Integrations send tens of properties; these leave room for that many times over, and keep a request at
# the caps to a few queries (100 values of 2,000 characters is 200 KB, well under API_MAX_BODY_BYTES).
CONTACT_PROPERTIES_PER_REQUEST = env.int("CONTACT_PROPERTIES_PER_REQUEST", default=100)  # custom keys in one body
CONTACT_PROPERTIES_PER_TEAM = env.int("CONTACT_PROPERTIES_PER_TEAM", default=500)  # declared properties a team has
PROPERTY_VALUE_MAX_CHARS = env.int("PROPERTY_VALUE_MAX_CHARS", default=2000)  # a contact or event property's text
EVENT_PROPERTIES_PER_REQUEST = env.int("EVENT_PROPERTIES_PER_REQUEST", default=100)  # keys of `eventProperties`
DATA_VARIABLES_PER_REQUEST = env.int("DATA_VARIABLES_PER_REQUEST", default=100)  # keys of `dataVariables`
# A data variable's text (any string in it): one-off content such as an address or a message, longer than a
# stored property may be.
DATA_VARIABLE_MAX_CHARS = env.int("DATA_VARIABLE_MAX_CHARS", default=10_000)

# Stripe's API, called with an endpoint's restricted key (import, catch-up, an unknown customer's email).
# STRIPE_API_BASE is for a local stand-in of Stripe (the tests run one); production leaves it alone.
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com")
STRIPE_API_TIMEOUT = env.int("STRIPE_API_TIMEOUT", default=20)  # seconds per request
STRIPE_API_RETRIES = env.int("STRIPE_API_RETRIES", default=2)  # the library's own retries of 409, 5xx and timeouts
STRIPE_RATE_LIMIT_RETRIES = env.int("STRIPE_RATE_LIMIT_RETRIES", default=6)  # 429s waited out, with backoff
STRIPE_SYNC_PAGE_SIZE = env.int("STRIPE_SYNC_PAGE_SIZE", default=100)  # objects per page, Stripe's maximum
STRIPE_CATCHUP_DAYS = 30  # how far back Stripe keeps events

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # The stripe library logs each request at INFO and response bodies (customers' emails) at DEBUG.
        "stripe": {"level": "WARNING"},
        "django.db.backends": {"level": "WARNING"},
        "mail.log": {"level": "WARNING"},
        # axes says INFO on every successful log-in (masked); failures and lock-outs are WARNING and stay.
        "axes": {"level": "WARNING"},
    },
}

# HTTPS. Production (DEBUG=false) defaults to HTTPS only: plain HTTP is redirected, cookies are sent only
# over HTTPS, and browsers are told (HSTS) to use HTTPS for a year. DEBUG=true keeps plain HTTP for
# development. Each one can be set from the environment; see "Production settings" in the README.
#
# TRUSTED_PROXY_COUNT is how many reverse proxies (load balancer, nginx, …) stand in front of the app and
# set X-Forwarded-For / X-Forwarded-Proto. 0 (the default) trusts neither header: a client could forge them.
# From 1, a request is HTTPS when the proxy says so, and the log-in throttle counts the client's address
# as the proxies recorded it instead of the proxy's own (accounts.login_throttle.client_ip).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured(f"TRUSTED_PROXY_COUNT={TRUSTED_PROXY_COUNT} must be 0 (no proxy) or more.")
if TRUSTED_PROXY_COUNT:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = _strict_bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Never redirected: load balancers probe /healthz over plain HTTP, and Stripe does not follow a redirect of
# its POST (an http:// endpoint URL would fail every delivery instead of being upgraded). The URL LoopSync
# shows for Stripe is built from SITE_URL, https:// in production, and Stripe requires https in live mode.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^webhooks/"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _strict_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = _strict_bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = _strict_bool("SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy (django-csp), on every response, DEBUG or not: scripts, styles, fonts and
# connections come from this site only; no inline script, event handler or eval anywhere (htmx is
# configured not to need them, see base.html), no plugins, no framing, forms post here only.
# Two kinds of page add to it (loopsync/csp.py, which says why it cannot be narrower): the email editors
# (inline styles and https images, for the email in their preview) and ReDoc (its run-time styles, a worker).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
