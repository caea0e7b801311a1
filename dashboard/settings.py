"""Settings for Windows Node Doctor: one env-driven module; defaults run a fresh clone.

Every variable is documented in ``.env.example``.
"""

from __future__ import annotations

import importlib.util
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

from dashboard.bundlestore import storage_config
from dashboard.env import env_bool, env_int, env_list, env_secret, env_str, production_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("WND_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DJANGO_DEBUG", False)
# Embedded mode runs with a development key; production (WND_PRODUCTION=1) must set a long random
# one: a published key (the placeholder of .env.example, Django's "django-insecure-") or a short one is refused.
WND_PRODUCTION = env_bool("WND_PRODUCTION", False)
SECRET_KEY = (
    production_secret_key("DJANGO_SECRET_KEY")
    if WND_PRODUCTION
    else env_secret("DJANGO_SECRET_KEY", "") or "insecure-embedded-mode-key-change-me"
)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# daphne makes `manage.py runserver` serve ASGI (WebSockets); it belongs to the demo/dev set
# (requirements-demo.in), not to the production image, which serves with uvicorn.
_RUNSERVER_ASGI = ["daphne"] if importlib.util.find_spec("daphne") else []

INSTALLED_APPS = [
    *_RUNSERVER_ASGI,
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "template_partials",
    "django_celery_beat",
    "axes",
    "mozilla_django_oidc",
    "dashboard",
]

MIDDLEWARE = [
    "dashboard.server.health.ProbeMiddleware",  # first: probes come from addresses outside ALLOWED_HOSTS
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into its answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "dashboard.urls"
ASGI_APPLICATION = "dashboard.asgi.application"
WSGI_APPLICATION = "dashboard.wsgi.application"

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
                "dashboard.pages.context.roles",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        # Empty (as .env.example ships it) means the default, like unset; or DATABASE_URL_FILE.
        env_secret("DATABASE_URL", "") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0, minimum=0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # WAL lets the web process read while the worker writes; IMMEDIATE avoids
    # "database is locked" upgrades from read to write transactions.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not memory: integration tests share the test database with a real
    # web server and a real Celery worker running in other processes.
    # One file per test process, so that test runs side by side never share one.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "fleet"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Production runs collectstatic into DJANGO_STATIC_ROOT; embedded mode serves static/ directly.
_static_root = env_str("DJANGO_STATIC_ROOT", "")
STATIC_ROOT = Path(_static_root) if _static_root else None
WHITENOISE_USE_FINDERS = not _static_root

REDIS_URL = env_secret("REDIS_URL", "redis://127.0.0.1:6379/0")  # or REDIS_URL_FILE (it may hold a password)

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "dashboard.server.channel_layer.RedisChannelLayer",
        "CONFIG": {
            # Consumers wait on Redis for up to 5 s at a time; redis-py's default
            # socket timeout is also 5 s, which would cut idle sockets.
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
            # The default of 100 silently drops bursts; live messages also carry
            # sequence numbers so a browser can detect a gap and resync.
            "capacity": env_int("WND_CHANNEL_CAPACITY", 2000, minimum=100),
            "expiry": 30,
        },
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None  # a worker waits for Redis as long as it takes (every 1-2 s)
CELERY_TASK_ALWAYS_EAGER = env_bool("WND_CELERY_EAGER", False)
CELERY_BEAT_SCHEDULER = "dashboard.beat:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
# No task runs longer than WND_TASK_TIME_LIMIT seconds (the longest are schedule runs over a
# whole fleet and bundle exports); a message taken by a worker that died comes back after the
# visibility timeout, which must outlast the longest task or a running task would be handed
# to a second worker. Reports, runs and bundles do not wait for it: ``dashboard.delivery``
# sweeps them (at worker start, then every 30 s).
WND_TASK_TIME_LIMIT = env_int("WND_TASK_TIME_LIMIT", 1800, minimum=60)
CELERY_TASK_TIME_LIMIT = WND_TASK_TIME_LIMIT
CELERY_TASK_SOFT_TIME_LIMIT = WND_TASK_TIME_LIMIT - 30
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("WND_TASK_VISIBILITY_TIMEOUT", WND_TASK_TIME_LIMIT + 300, minimum=10),
}
# A broker that is down makes a publish fail within a second (the report stays owed), not hang.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
# Delivery (dashboard.delivery): a stored report whose diagnosis was queued this long ago and
# is not done is queued again; an on-demand run or a bundle without a sign of life for
# WND_LEASE_SECONDS is failed (runs) or built again (bundles, at most twice).
WND_REQUEUE_AFTER = env_int("WND_REQUEUE_AFTER", 600, minimum=1)
WND_LEASE_SECONDS = env_int("WND_LEASE_SECONDS", 300, minimum=1)

# Seconds a request body may stall (no byte arriving) before the request is answered 408 and closed.
WND_BODY_IDLE_TIMEOUT = env_int("WND_BODY_IDLE_TIMEOUT", 30, minimum=1)

# Ingest limits (bytes): the compressed body, and what it may inflate to.
WND_MAX_REPORT_BYTES = env_int("WND_MAX_REPORT_BYTES", 5 * 1024 * 1024, minimum=1024)
WND_MAX_REPORT_INFLATED_BYTES = env_int("WND_MAX_REPORT_INFLATED_BYTES", 20 * 1024 * 1024, minimum=1024)
# Reports a web process writes at once (dashboard.ingest.one_writer). One is fastest on SQLite and
# on a database nearby; a report's transaction is about five round trips, so with a distant
# PostgreSQL (a millisecond or more away) more writers keep a process above 200 reports a second.
WND_INGEST_WRITERS = env_int("WND_INGEST_WRITERS", 1, minimum=1)
# How much of each node's log the dashboard keeps to give checks recent context.
WND_LOG_TAIL_BYTES = env_int("WND_LOG_TAIL_BYTES", 128 * 1024, minimum=1024)
WND_FLEET_PAGE_SIZE = env_int("WND_FLEET_PAGE_SIZE", 25, minimum=5)
WND_REPORTS_KEPT_PER_NODE = env_int("WND_REPORTS_KEPT_PER_NODE", 50, minimum=1)
# The cluster source (manage.py watch_cluster): which clusters, and the kubeconfig they are read with.
WND_CLUSTERS = env_str("WND_CLUSTERS", "")
WND_CLUSTERS_FILE = env_str("WND_CLUSTERS_FILE", "")
WND_KUBECONFIG = env_str("WND_KUBECONFIG", "")
# Watcher failover (dashboard/cluster/leader.py): replicas of watch_cluster elect one with this Lease
# (namespace/name, in the first configured cluster); empty: no election, run one replica.
WND_WATCHER_LEASE = env_str("WND_WATCHER_LEASE", "")
WND_WATCHER_LEASE_SECONDS = env_int("WND_WATCHER_LEASE_SECONDS", 15, minimum=3)
# Agents that enroll themselves (dashboard/cluster/enroll.py): the audience of their projected
# ServiceAccount token, and the only ServiceAccount (namespace/name) whose tokens are accepted.
WND_AGENT_AUDIENCE = env_str("WND_AGENT_AUDIENCE", "windows-node-doctor")
WND_AGENT_SERVICE_ACCOUNT = env_str("WND_AGENT_SERVICE_ACCOUNT", "windows-node-doctor/node-doctor-agent")
WND_WORKLOADS_PAGE_SIZE = env_int("WND_WORKLOADS_PAGE_SIZE", 50, minimum=5)
# Diagnostic bundles: where exports are stored (dashboard.bundlestore: a folder web and workers share,
# or object storage), how long and how much is kept, and where "Open a GitHub issue" points.
WND_BUNDLE_DIR = Path(env_str("WND_BUNDLE_DIR", "") or VAR_DIR / "bundles")
WND_BUNDLE_STORAGE = env_str("WND_BUNDLE_STORAGE", "file")
WND_BUNDLE_MAX_AGE_DAYS = env_int("WND_BUNDLE_MAX_AGE_DAYS", 14, minimum=1)
WND_BUNDLE_MAX_TOTAL_BYTES = env_int("WND_BUNDLE_MAX_TOTAL_BYTES", 10 * 1024**3, minimum=1024 * 1024)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "bundles": storage_config(WND_BUNDLE_STORAGE, env_secret("WND_BUNDLE_STORAGE_OPTIONS", "")),
}
WND_ISSUE_REPOSITORY = env_str("WND_ISSUE_REPOSITORY", "kubernetes/kubernetes")
WND_ISSUE_TEMPLATE = env_str("WND_ISSUE_TEMPLATE", "bug-report.yaml")
# Seconds a bundle build waits for the connected agents' fresh logs before using the stored tails.
WND_BUNDLE_LOGS_WAIT = env_int("WND_BUNDLE_LOGS_WAIT", 20, minimum=0)
# The Diagnose page: largest bundle an upload may carry (bytes); it is analyzed, then deleted.
WND_MAX_UPLOAD_BYTES = env_int("WND_MAX_UPLOAD_BYTES", 200 * 1024 * 1024, minimum=1024)
# Its analysis runs in a child process: address space (MiB), seconds, and analyses at once per user.
WND_DIAGNOSE_MEMORY_MB = env_int("WND_DIAGNOSE_MEMORY_MB", 1024, minimum=128)
WND_DIAGNOSE_TIMEOUT = env_int("WND_DIAGNOSE_TIMEOUT", 60, minimum=5)
WND_DIAGNOSE_PER_USER = env_int("WND_DIAGNOSE_PER_USER", 1, minimum=1)
WND_DIAGNOSE_CONCURRENCY = env_int("WND_DIAGNOSE_CONCURRENCY", 2, minimum=1)

# Scheduled checks (dashboard.schedules): how long a run waits for the agents' fresh reports,
# and after how long without a heartbeat a run is taken for dead and its schedule released.
WND_SCHEDULE_COLLECT_WAIT = env_int("WND_SCHEDULE_COLLECT_WAIT", 20, minimum=0)
WND_SCHEDULE_RUN_LEASE = env_int("WND_SCHEDULE_RUN_LEASE", 300, minimum=30)
# A node whose agent has not reported for this long gets a node.agent-stale finding (seconds).
WND_AGENT_STALE_AFTER = env_int("WND_AGENT_STALE_AFTER", 600, minimum=30)

# Notifications (dashboard.notify): links in messages point at WND_PUBLIC_URL.
WND_PUBLIC_URL = env_str("WND_PUBLIC_URL", "http://localhost:8000")
WND_NOTIFY_TIMEOUT = env_int("WND_NOTIFY_TIMEOUT", 10, minimum=1)
WND_NOTIFY_MAX_ATTEMPTS = env_int("WND_NOTIFY_MAX_ATTEMPTS", 6, minimum=1)
EMAIL_HOST = env_str("EMAIL_HOST", "")
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "windows-node-doctor@localhost")
# Without a mail server, email notifications are written to the worker's log.
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend",
)

# /metrics (Prometheus) answers a request with "Authorization: Bearer <WND_METRICS_TOKEN>",
# or a signed-in user; with no token set, only signed-in users.
WND_METRICS_TOKEN = env_secret("WND_METRICS_TOKEN", "")

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
# Behind a TLS-terminating proxy or ingress (the documented deployments): trust its X-Forwarded-Proto,
# redirect plain HTTP to HTTPS (the probes excepted: kubelet asks them over HTTP) and send HSTS.
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False) else None
)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^livez$", r"^readyz$"]
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)

# Sign-in: local accounts, throttled by django-axes (a user name and address pair is locked out for
# WND_LOGIN_COOLOFF_MINUTES after WND_LOGIN_FAILURE_LIMIT failures), and optionally OpenID Connect.
AXES_FAILURE_LIMIT = env_int("WND_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("WND_LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_LOCKOUT_CALLABLE = "dashboard.access.signin.locked_out"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# OpenID Connect (Entra ID, Okta, Keycloak...): on when WND_OIDC_CLIENT_ID is set. The provider's
# group claim decides the role at each sign-in (dashboard.access.oidc).
WND_OIDC_ENABLED = bool(env_str("WND_OIDC_CLIENT_ID", ""))
OIDC_RP_CLIENT_ID = env_str("WND_OIDC_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = env_secret("WND_OIDC_CLIENT_SECRET", "")
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("WND_OIDC_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = env_str("WND_OIDC_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = env_str("WND_OIDC_USERINFO_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = env_str("WND_OIDC_JWKS_ENDPOINT", "")
OIDC_RP_SIGN_ALGO = env_str("WND_OIDC_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = env_str("WND_OIDC_SCOPES", "openid email profile")
OIDC_USE_NONCE = True
OIDC_TIMEOUT = env_int("WND_OIDC_TIMEOUT", 10, minimum=1)
WND_OIDC_LABEL = env_str("WND_OIDC_LABEL", "Sign in with single sign-on")
WND_OIDC_GROUPS_CLAIM = env_str("WND_OIDC_GROUPS_CLAIM", "groups")
WND_OIDC_OPERATOR_GROUPS = env_list("WND_OIDC_OPERATOR_GROUPS", [])
WND_OIDC_VIEWER_GROUPS = env_list("WND_OIDC_VIEWER_GROUPS", [])
if WND_OIDC_ENABLED:
    AUTHENTICATION_BACKENDS.append("dashboard.access.oidc.RoleMappingBackend")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("WND_LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
