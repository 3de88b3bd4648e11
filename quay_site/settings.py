"""Settings for the registry, fed by environment variables (django-environ).

The embedded default needs no variable at all: SQLite, filesystem storage and a
filesystem Celery broker, all under DATA_DIR. Every variable is listed in README.md.
Secrets can be read from files: set ``NAME_FILE`` instead of ``NAME``.
"""

import ipaddress
import os
import secrets
from pathlib import Path

import environ
from kombu import Exchange, Queue

from quay_site import logs as quay_logs

BASE_DIR = Path(__file__).resolve().parent.parent

# FileAwareEnv reads SECRET_KEY_FILE, DATABASE_URL_FILE, ... when NAME itself is unset.
env = environ.FileAwareEnv()

DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept under DATA_DIR."""
    if env.str("SECRET_KEY", default=""):
        return env.str("SECRET_KEY")
    path = DATA_DIR / "secret_key"
    if not path.exists():
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(secrets.token_urlsafe(50))
        tmp.chmod(0o600)
        try:
            # link() fails if another process won the race; both then read the winner's key.
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


SECRET_KEY = _secret_key()
# Fernet keys for secrets stored encrypted (robot tokens, webhook secrets, SSH keys, OAuth client
# secrets): FIELD_ENCRYPTION_KEYS newest first (the first encrypts, all decrypt: key rotation with
# `manage.py rotate_encryption_keys`), FIELD_ENCRYPTION_KEY the one-key form; derived from
# SECRET_KEY when neither is set (accounts/crypto.py).
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])
FIELD_ENCRYPTION_KEY = env.str("FIELD_ENCRYPTION_KEY", default="")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Public host name used in token realms, docker_url and links; empty means "the Host header".
SERVER_HOSTNAME = env.str("SERVER_HOSTNAME", default="")
PREFERRED_URL_SCHEME = env.str("PREFERRED_URL_SCHEME", default="")

# Cookies behind TLS: with PREFERRED_URL_SCHEME=https (or SECURE_COOKIES=true) the session and CSRF
# cookies are sent over HTTPS only. Both are HttpOnly-or-unneeded-by-scripts and SameSite=Lax; the
# CSRF token reaches the page through the form or GET /csrf_token, never from a script reading the
# cookie. gunicorn already turns a trusted proxy's X-Forwarded-Proto into the request's scheme
# (FORWARDED_ALLOW_IPS), so request.is_secure() is right behind nginx.
SECURE_COOKIES = env.bool("SECURE_COOKIES", default=PREFERRED_URL_SCHEME == "https")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
# Strict-Transport-Security on HTTPS responses; off unless asked for (it binds browsers to HTTPS
# for this long, so an operator turns it on once TLS is settled).
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
# Sent on every response by SecurityMiddleware and XFrameOptionsMiddleware (and by the /v2/ fast
# path, which skips them: registry/middleware.py).
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI's assets, served from our static files: the docs page loads nothing from a CDN.
    "drf_spectacular_sidecar",
    "accounts",
    "registry",
    "notifications",
    "builds",
    "triggers",
    # Security scanning built in (scanning/): layers indexed after a push, OSV advisories.
    "scanning",
    "squash",
    # The web UI: server-rendered pages, htmx (served from django-htmx's static files).
    "django_htmx",
    "ui",
    # /health/instance, /health/endtoend and Prometheus /metrics (observability/).
    "observability",
]

MIDDLEWARE = [
    # Before all: every later line logged for the request carries its id (quay_site/request_id.py).
    "quay_site.request_id.RequestIdMiddleware",
    # Counts and times every request (by route name), /v2/ included: before the fast path.
    "observability.middleware.MetricsMiddleware",
    # First: answers /v2/ (token-authenticated registry API) without the rest of the stack.
    "registry.middleware.RegistryFastPathMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "quay_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "ui.context_processors.ui",
            ],
        },
    },
]

WSGI_APPLICATION = "quay_site.wsgi.application"
ASGI_APPLICATION = "quay_site.asgi.application"

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at BEGIN so
    # two processes never deadlock upgrading read locks; the timeout waits out short writes.
    DATABASES["default"]["OPTIONS"] = {
        # How long a write waits for the lock before failing (503 UNAVAILABLE on /v2/).
        "timeout": env.float("SQLITE_BUSY_TIMEOUT_SECONDS", default=30.0),
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# Argon2id (memory-hard) for new passwords; the PBKDF2 hashers stay so that older hashes still
# verify, and Django re-hashes such a password with Argon2 at its next successful check.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
]
if env.bool("FAST_PASSWORD_HASHER", default=False):
    # Only for the test suite: a memory-hard hash per created user would dominate its run time.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

REDIS_URL = env.str("REDIS_URL", default="")
# Prefixes every key this installation writes to Redis (cache, Celery queues, channel groups), so
# that several installations (or test servers) can share one Redis without seeing each other's
# tasks and wake-ups.
REDIS_KEY_PREFIX = env.str("REDIS_KEY_PREFIX", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_KEY_PREFIX,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The server image collects static files at build time into its own STATIC_ROOT (deploy/server).
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(DATA_DIR / "static")))

# Storage of blob bytes: "filesystem" (under DATA_DIR/storage) or "s3" (django-storages).
STORAGE_BACKEND = env.str("STORAGE_BACKEND", default="filesystem")
STORAGE_DIR = Path(env.str("STORAGE_DIR", default=str(DATA_DIR / "storage")))
S3_BUCKET = env.str("S3_BUCKET", default="")
S3_ENDPOINT_URL = env.str("S3_ENDPOINT_URL", default="") or None
S3_REGION = env.str("S3_REGION", default="us-east-1")
S3_ACCESS_KEY_ID = env.str("S3_ACCESS_KEY_ID", default="") or None
S3_SECRET_ACCESS_KEY = env.str("S3_SECRET_ACCESS_KEY", default="") or None
# Blob GETs answer 307 to a presigned URL valid this long (S3 only).
S3_PRESIGN_SECONDS = env.int("S3_PRESIGN_SECONDS", default=600)
# Serve blobs through nginx: the response names an internal location instead of the bytes.
X_ACCEL_REDIRECT_PREFIX = env.str("X_ACCEL_REDIRECT_PREFIX", default="")

# Registry token auth (Docker token spec). The RSA key is generated on first start unless given.
REGISTRY_TOKEN_KEY_FILE = env.str("REGISTRY_TOKEN_KEY_FILE", default=str(DATA_DIR / "registry_token_key.pem"))
REGISTRY_TOKEN_ISSUER = env.str("REGISTRY_TOKEN_ISSUER", default="quay-django")
REGISTRY_TOKEN_SECONDS = env.int("REGISTRY_TOKEN_SECONDS", default=300)
if REGISTRY_TOKEN_SECONDS < 60:
    raise environ.ImproperlyConfigured("REGISTRY_TOKEN_SECONDS must be at least 60")
# Failed logins at /v2/auth per client address before it answers 429 for the rest of the window.
LOGIN_FAILURES_PER_WINDOW = env.int("LOGIN_FAILURES_PER_WINDOW", default=20)
LOGIN_FAILURE_WINDOW_SECONDS = env.int("LOGIN_FAILURE_WINDOW_SECONDS", default=300)
MANIFEST_MAX_BYTES = env.int("MANIFEST_MAX_BYTES", default=4 * 1024 * 1024)
UPLOAD_SESSION_SECONDS = env.int("UPLOAD_SESSION_SECONDS", default=24 * 3600)
# Garbage collection: nothing uploaded, linked or stored more recently than the grace period is
# collected (a push uploads its blobs before its manifest); a pass runs every interval (0: never,
# `manage.py gc` still works).
GC_GRACE_SECONDS = env.int("GC_GRACE_SECONDS", default=3600)
GC_INTERVAL_SECONDS = env.int("GC_INTERVAL_SECONDS", default=600)
if GC_GRACE_SECONDS < 0 or GC_INTERVAL_SECONDS < 0:
    raise environ.ImproperlyConfigured("GC_GRACE_SECONDS and GC_INTERVAL_SECONDS must not be negative")
# The time machine windows a namespace may choose (seconds): how long ended tags stay restorable
# and keep their manifests. Quay's choices: none, 1 day, 1 week, 2 weeks (the default), 4 weeks.
TAG_EXPIRATION_OPTIONS = env.list("TAG_EXPIRATION_OPTIONS", cast=int, default=[0, 86400, 604800, 1209600, 2419200])
# Page size cap for tags/list, _catalog and referrers.
REGISTRY_PAGE_MAX = env.int("REGISTRY_PAGE_MAX", default=1000)
REGISTRY_PAGE_DEFAULT = env.int("REGISTRY_PAGE_DEFAULT", default=100)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "quay_site.rest.auth.OAuthTokenAuthentication",
        "quay_site.rest.auth.CsrfSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "quay_site.rest.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "registry.rest.schema.ApiAutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        "signin": env.str("SIGNIN_RATE", default="10/minute"),
    },
    # Throttles count by the connection's address. Left unset, DRF would count by whatever
    # X-Forwarded-For a client sends, and a new made-up value each time escapes the limit.
    "NUM_PROXIES": 0,
}
# The OpenAPI 3 schema (/api/v1/openapi.json) and its Swagger UI page (/api/v1/docs/).
SPECTACULAR_SETTINGS = {
    "TITLE": "Registry REST API",
    "DESCRIPTION": "Quay-compatible /api/v1: repositories, organizations, teams, robots, permissions, logs.",
    "VERSION": "v1",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "PREPROCESSING_HOOKS": ["registry.rest.schema.only_rest_api"],
    "PATH_CONVERTER_OVERRIDES": {"apirepopath": str},
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}
# Quay's clients send the CSRF token in this header (GET /csrf_token hands it out).
CSRF_HEADER_NAME = "HTTP_X_CSRF_TOKEN"

# The web UI (ui/). Sign-up is open when this is true AND a superuser has not switched it off in
# the superuser panel (Site configuration); false closes it whatever the switch says.
FEATURE_USER_CREATION = env.bool("FEATURE_USER_CREATION", default=True)
LOGIN_URL = "ui:signin"
LOGIN_REDIRECT_URL = "ui:repository-list"
CSRF_FAILURE_VIEW = "ui.views.base.csrf_failure"
# Content-Security-Policy (django-csp) on every response: scripts and styles only from our own
# static files, no inline code, no plugins, no framing. Swagger UI (/api/v1/docs/) styles itself
# inline, so that one page adds 'unsafe-inline' styles (quay_site/urls.py), scripts stay 'self'.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# Celery: Redis when REDIS_URL is set, else kombu's filesystem transport under DATA_DIR so the
# embedded default needs no server.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    # kombu's filesystem transport with whole-file publishes (quay_site/broker.py says why).
    CELERY_BROKER_TRANSPORT = "quay_site.broker:Transport"
    _queue_dir = DATA_DIR / "celery-queue"
    (_queue_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(_queue_dir / "processed"),
        # Without this kombu writes its control exchange files into the working directory.
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
        # kombu polls the folder once a second by default; measured with bench.notifications,
        # 0.1 s took the paced event-to-delivery p50 from 304 to 39 ms for little idle CPU.
        "polling_interval": 0.1,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")) and REDIS_KEY_PREFIX:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": REDIS_KEY_PREFIX}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Queues by kind of work. A worker started without -Q consumes every queue listed here, taking
# from them in turn: a build dispatch or a webhook delivery is then picked up within one task's
# time even when thousands of security-indexing tasks wait in the default queue (measured with
# bench.load: one worker under sustained pushes left builds 171 s from request to `building`).
# Each queue its own routing key: queues sharing one would each get a copy of every message.
CELERY_TASK_QUEUES = tuple(
    Queue(name, Exchange(name), routing_key=name) for name in ("celery", "builds", "notifications")
)
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {"builds.*": {"queue": "builds"}, "notifications.*": {"queue": "notifications"}}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Periodic tasks (celery beat, which `manage.py serve` runs inside its worker). A run that waited
# longer than the interval (no worker) is dropped rather than piled up behind the next one.
CELERY_BEAT_SCHEDULE = (
    {
        "garbage-collection": {
            "task": "registry.gc_periodic",
            "schedule": float(GC_INTERVAL_SECONDS),
            "options": {"expires": GC_INTERVAL_SECONDS},
        }
    }
    if GC_INTERVAL_SECONDS
    else {}
)
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")

# Prometheus metrics (observability/): each process of the machine (gunicorn workers, Celery)
# writes its counts into files in METRICS_DIR, and /metrics adds them up. /metrics answers only
# clients in METRICS_ALLOWED_NETWORKS (CIDRs); the health endpoints are public.
METRICS_DIR = Path(env.str("METRICS_DIR", default=str(DATA_DIR / "run" / "prometheus")))
METRICS_ALLOWED_NETWORKS = [
    ipaddress.ip_network(cidr.strip(), strict=False)
    for cidr in env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"])
]

# Outbound HTTP (quay_site/outbound.py: webhooks, chat messages, and later builds and triggers).
# Only public addresses are reached unless the operator opens networks here (CIDRs, comma-separated).
OUTBOUND_ALLOWED_NETWORKS = [
    ipaddress.ip_network(cidr.strip(), strict=False) for cidr in env.list("OUTBOUND_ALLOWED_NETWORKS", default=[])
]
OUTBOUND_TIMEOUT_SECONDS = env.float("OUTBOUND_TIMEOUT_SECONDS", default=10.0)
OUTBOUND_MAX_RESPONSE_BYTES = env.int("OUTBOUND_MAX_RESPONSE_BYTES", default=64 * 1024)
# Extra CA certificates (PEM) trusted for outbound HTTPS, e.g. an internal CA; empty: the system's.
OUTBOUND_CA_FILE = env.str("OUTBOUND_CA_FILE", default="")

# Repository notifications (notifications/). Failed deliveries are retried with exponential
# backoff and jitter from RETRY_BASE up to RETRY_MAX between tries, for RETRY_PERIOD in all; a
# notification is disabled (and its repository's admins told) after DISABLE_AFTER_FAILURES failed
# attempts in a row (0: never).
NOTIFICATION_RETRY_PERIOD_SECONDS = env.int("NOTIFICATION_RETRY_PERIOD_SECONDS", default=3 * 24 * 3600)
NOTIFICATION_RETRY_BASE_SECONDS = env.float("NOTIFICATION_RETRY_BASE_SECONDS", default=30.0)
NOTIFICATION_RETRY_MAX_SECONDS = env.float("NOTIFICATION_RETRY_MAX_SECONDS", default=6 * 3600.0)
NOTIFICATION_DISABLE_AFTER_FAILURES = env.int("NOTIFICATION_DISABLE_AFTER_FAILURES", default=20)
# A worker holds a delivery this long per attempt; past it (the worker died) another may send it.
NOTIFICATION_LEASE_SECONDS = env.float("NOTIFICATION_LEASE_SECONDS", default=OUTBOUND_TIMEOUT_SECONDS + 30)
if NOTIFICATION_LEASE_SECONDS <= OUTBOUND_TIMEOUT_SECONDS:
    raise environ.ImproperlyConfigured("NOTIFICATION_LEASE_SECONDS must be longer than OUTBOUND_TIMEOUT_SECONDS")
# The sweeper's period: it gives up on expired deliveries and wakes a worker when any is due.
NOTIFICATION_SWEEP_SECONDS = env.float("NOTIFICATION_SWEEP_SECONDS", default=10.0)
# A worker that wakes up for a delivery then sends whatever else is due, for this long at most.
NOTIFICATION_DRAIN_SECONDS = env.float("NOTIFICATION_DRAIN_SECONDS", default=5.0)
# Retries due sooner than this are kept by the broker (a countdown); later ones by the sweeper.
NOTIFICATION_COUNTDOWN_MAX_SECONDS = env.float("NOTIFICATION_COUNTDOWN_MAX_SECONDS", default=60.0)
NOTIFICATION_LOG_RETENTION_DAYS = env.int("NOTIFICATION_LOG_RETENTION_DAYS", default=30)
# Client certificate (PEM) that HTTPS webhooks present, proving the call comes from this registry.
NOTIFICATION_TLS_CERT_FILE = env.str("NOTIFICATION_TLS_CERT_FILE", default="")
NOTIFICATION_TLS_KEY_FILE = env.str("NOTIFICATION_TLS_KEY_FILE", default="")
# Flowdock and HipChat API roots (a HipChat Server, a compatible service).
NOTIFICATION_FLOWDOCK_URL = env.str("NOTIFICATION_FLOWDOCK_URL", default="https://api.flowdock.com")
NOTIFICATION_HIPCHAT_URL = env.str("NOTIFICATION_HIPCHAT_URL", default="https://api.hipchat.com")
if NOTIFICATION_SWEEP_SECONDS > 0:
    CELERY_BEAT_SCHEDULE["notifications-sweep"] = {
        "task": "notifications.sweep",
        "schedule": NOTIFICATION_SWEEP_SECONDS,
        "options": {"expires": NOTIFICATION_SWEEP_SECONDS},
    }
CELERY_BEAT_SCHEDULE["notifications-prune"] = {
    "task": "notifications.prune",
    "schedule": 3600.0,
    "options": {"expires": 3600},
}

# E-mail (notification e-mails, address confirmations): SMTP when EMAIL_HOST is set, else printed
# to the console.
EMAIL_HOST = env.str("EMAIL_HOST", default="")
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="registry@localhost")

# LOG_FORMAT: `text` lines or `json` objects, each with the request id; every handler redacts
# credential-shaped text (quay_site/logs.py, README: Logs).
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    **quay_logs.handler_settings(LOG_FORMAT),
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "default", "filters": ["request_id", "redact"]}
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # Django logs every 4xx as a warning; on /v2/ a 404 is ordinary protocol (a client asks
    # whether a blob exists before uploading it), and 401 starts every token handshake. Server
    # errors are still logged; client errors are in the access log when it is on.
    # At DEBUG, urllib3 logs each outbound request's URL (some webhook URLs, Slack's, are the
    # secret) and websockets each frame, cut short where redaction no longer sees the key names.
    "loggers": {"django.request": {"level": "ERROR"}, "urllib3": {"level": "INFO"}, "websockets": {"level": "INFO"}},
}

# Dockerfile builds (builds/, docs/BUILDS.md). FEATURE_BUILD_SUPPORT and BUILDER_REGISTRATION_SECRET,
# when set, win over what a superuser saved in Django admin (builds.BuildSettings).
FEATURE_BUILD_SUPPORT = env.bool("FEATURE_BUILD_SUPPORT", default=None)
BUILDER_REGISTRATION_SECRET = env.str("BUILDER_REGISTRATION_SECRET", default="")
# The websocket process (Daphne): build workers and live build logs. WS_PUBLIC_URL is what
# browsers and workers are told (default: ws://<the request's host>:<WS_PORT>).
WS_PORT = env.int("WS_PORT", default=8787)
WS_PUBLIC_URL = env.str("WS_PUBLIC_URL", default="")
# Workers heartbeat this often; a build whose worker is silent for the timeout is requeued, at
# most MAX_ATTEMPTS assignments in all, then ends internalerror.
BUILD_HEARTBEAT_SECONDS = env.float("BUILD_HEARTBEAT_SECONDS", default=5.0)
BUILD_HEARTBEAT_TIMEOUT_SECONDS = env.float("BUILD_HEARTBEAT_TIMEOUT_SECONDS", default=60.0)
BUILD_MAX_ATTEMPTS = env.int("BUILD_MAX_ATTEMPTS", default=3)
BUILD_JOB_TOKEN_SECONDS = env.int("BUILD_JOB_TOKEN_SECONDS", default=2 * 3600)
BUILD_SWEEP_SECONDS = env.float("BUILD_SWEEP_SECONDS", default=15.0)
# Build sources: uploads and URL downloads are capped; archives are also capped when unpacked
# (entries and bytes), by the worker.
BUILD_PACKAGE_MAX_BYTES = env.int("BUILD_PACKAGE_MAX_BYTES", default=512 * 1024 * 1024)
BUILD_PACKAGE_DIR = Path(env.str("BUILD_PACKAGE_DIR", default=str(DATA_DIR / "build-packages")))
# Channels: with Redis every websocket process shares one layer; without it each Daphne process
# has an in-memory layer and builds.wakeup carries wake-ups between processes itself.
CHANNEL_LAYERS = {
    "default": (
        {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py is pinned below 8 for this layer (see requirements.txt).
            "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{REDIS_KEY_PREFIX}asgi"},
        }
        if REDIS_URL
        else {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    )
}
if BUILD_SWEEP_SECONDS > 0:
    CELERY_BEAT_SCHEDULE["builds-sweep"] = {
        "task": "builds.sweep",
        "schedule": BUILD_SWEEP_SECONDS,
        "options": {"expires": BUILD_SWEEP_SECONDS},
    }
CELERY_BEAT_SCHEDULE["builds-prune-packages"] = {
    "task": "builds.prune_packages",
    "schedule": 24 * 3600.0,
    "options": {"expires": 3600},
}

# Build triggers (triggers/): a trigger is disabled after this many successive failed builds, or
# successive internal errors (Quay's defaults; 0 turns the rule off).
TRIGGER_DISABLE_AFTER_FAILURES = env.int("TRIGGER_DISABLE_AFTER_FAILURES", default=100)
TRIGGER_DISABLE_AFTER_INTERNAL_ERRORS = env.int("TRIGGER_DISABLE_AFTER_INTERNAL_ERRORS", default=5)

# Squashed image downloads (squash/, docs/SQUASH.md): the cached tarballs' total size is kept
# under SQUASH_CACHE_MAX_BYTES (least recently used first out); a flattening refreshes its
# heartbeat every SQUASH_HEARTBEAT_SECONDS, and one silent for SQUASH_STALE_SECONDS is taken over.
SQUASH_CACHE_MAX_BYTES = env.int("SQUASH_CACHE_MAX_BYTES", default=20 * 1024**3)
SQUASH_HEARTBEAT_SECONDS = env.float("SQUASH_HEARTBEAT_SECONDS", default=5.0)
SQUASH_STALE_SECONDS = env.float("SQUASH_STALE_SECONDS", default=60.0)
if SQUASH_STALE_SECONDS <= SQUASH_HEARTBEAT_SECONDS:
    raise environ.ImproperlyConfigured("SQUASH_STALE_SECONDS must be longer than SQUASH_HEARTBEAT_SECONDS")
# The platform a multi-architecture tag is squashed for when the download names none.
SQUASH_DEFAULT_PLATFORM = env.str("SQUASH_DEFAULT_PLATFORM", default="linux/amd64")

# Security scanning (scanning/): index pushed images and match them against imported OSV data.
FEATURE_SECURITY_SCANNER = env.bool("FEATURE_SECURITY_SCANNER", default=True)
# Optional Clair v4 (scanning/clair.py): with CLAIR_URL set, Clair's indexer and matcher scan
# pushed images instead of the built-in indexer. CLAIR_PSK: Clair's pre-shared key (base64), for
# its HS256 JWTs. CLAIR_REGISTRY_URL: this registry as Clair reaches it (layers are fetched from
# its /v2/ with a short-lived pull token); default PREFERRED_URL_SCHEME://SERVER_HOSTNAME. Clair
# is reached through quay_site/outbound.py: a private address needs OUTBOUND_ALLOWED_NETWORKS.
CLAIR_URL = env.str("CLAIR_URL", default="").rstrip("/")
CLAIR_PSK = env.str("CLAIR_PSK", default="")
CLAIR_REGISTRY_URL = env.str("CLAIR_REGISTRY_URL", default="").rstrip("/")
CLAIR_TIMEOUT_SECONDS = env.float("CLAIR_TIMEOUT_SECONDS", default=300.0)
CLAIR_MAX_RESPONSE_BYTES = env.int("CLAIR_MAX_RESPONSE_BYTES", default=64 * 1024 * 1024)
CELERY_BEAT_SCHEDULE["scanning-sweep"] = {"task": "scanning.sweep", "schedule": 300.0, "options": {"expires": 300}}
