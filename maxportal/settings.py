"""Settings of maxportal, read from the environment, grouped by concern.

Every default works on a laptop with nothing else running: a SQLite file and a filesystem
Celery broker under ``var/``. Production sets ``DJANGO_DEBUG=0`` and then must give a secret key;
``python manage.py check --deploy`` is clean with the production defaults below.

No default here points anywhere but loopback. The groups, in order: Django (the site, static
files, security, logging), the database, Celery (with the one beat schedule), the agents' API,
signals and the inbox, leads and the MAX plan, provisioning (Proxmox, the checklist engine, the
in-container scripts).
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

# === Django ==================================================================================
# The site itself: debug and secret key, hosts, apps, templates, auth, static files, security.

DEBUG = env.bool("DJANGO_DEBUG", default=True)

# Only ever used with DEBUG on (a laptop); production refuses to start without its own key.
_DEV_SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production-0123456789abcdefghijklmnopqrstuvwxyz"  # noqa: S105
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. With DJANGO_DEBUG=0 maxportal needs a secret key: "
            "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(50))'` "
            "and export it as DJANGO_SECRET_KEY."
        )
    SECRET_KEY = _DEV_SECRET_KEY

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_celery_beat",
    "ninja",
    "maxportal",
    "maxportal.kernel",
    "eidolons",
    "leads",
    "provisioning",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # The API's one error body also for answers django-ninja never saw (unroutable path, 405).
    "maxportal.api.api_error_shape_middleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "maxportal.urls"

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
            ],
        },
    },
]

WSGI_APPLICATION = "maxportal.wsgi.application"
ASGI_APPLICATION = "maxportal.asgi.application"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

# Static files (whitenoise, collected under var/) and uploaded media (the leads' artifacts).
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
MEDIA_ROOT = env.path("MAXPORTAL_MEDIA_ROOT", default=VAR_DIR / "media")
MEDIA_URL = "media/"

# Security: always-on headers; with DEBUG off, HTTPS only (check --deploy is clean).
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    # Off only for `make run` on a laptop (plain HTTP on loopback, DEBUG off so that a 404 is the
    # product's page and not Django's URL list): scripts/run.sh sets DJANGO_SECURE_COOKIES=0.
    SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
    # maxportal is expected behind a TLS-terminating reverse proxy on the same host.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # /healthz is probed over plain HTTP on loopback by supervisors; it must not redirect.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# /healthz: how long the broker may take to answer before it is called down.
MAXPORTAL_HEALTH_BROKER_TIMEOUT = env.float("MAXPORTAL_HEALTH_BROKER_TIMEOUT", default=2.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
}

# === Database ================================================================================
# SQLite under var/ by default; PostgreSQL (DATABASE_URL) in production and CI.

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'maxportal.sqlite3'}"),
}
_ON_POSTGRESQL = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
if _ON_POSTGRESQL:
    # Opening a connection per request costs two thirds of a write endpoint's throughput
    # (TRAPS.md), so connections are kept. Under ASGI (uvicorn, the recommended server) every
    # request runs on a thread of its own and a CONN_MAX_AGE connection is never reused: it stays
    # open until PostgreSQL runs out of slots (measured by bench/api_load.py). So the default is
    # psycopg's pool, at most DATABASE_POOL_MAX_SIZE connections per process; 0 turns it off and
    # keeps per-thread persistent connections (DATABASE_CONN_MAX_AGE) for a WSGI-only deployment.
    _pool_max = env.int("DATABASE_POOL_MAX_SIZE", default=10)
    # A request waits at most this long for a pooled connection; then the API sheds it with 503 +
    # Retry-After (maxportal/api.py) instead of queueing it behind the whole overload.
    DATABASE_POOL_TIMEOUT = env.float("DATABASE_POOL_TIMEOUT", default=5.0)
    if _pool_max:
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps them; Django refuses both at once
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": min(2, _pool_max), "max_size": _pool_max, "timeout": DATABASE_POOL_TIMEOUT,
        }
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    # SQLite: wait for the writer lock instead of failing at once while a worker writes.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    # The threaded worker, beat and the web server write to one file at once; a transaction that
    # reads then writes would fail at once with "database is locked" when it has to upgrade its
    # lock (SQLite does not wait in that case). BEGIN IMMEDIATE takes the write lock up front, so
    # writers queue on the busy timeout above instead.
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    DATABASE_POOL_TIMEOUT = 20.0
    # --- SQLite for concurrent readers and one writer (issue 8 item 11) ---
    # WAL: readers never wait for the writer nor it for them (the long-poll reads while a worker
    # writes); NORMAL is durable in WAL mode except for the last commits on a power cut.
    DATABASES["default"]["OPTIONS"]["init_command"] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    # Tests get a file too: Django's default in-memory test database uses a shared cache, whose
    # table locks fail at once ("database table is locked") instead of waiting on the busy timeout.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-maxportal.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# === Celery ==================================================================================
# The broker (files under var/ by default, Redis in production), delivery guarantees, time limits
# and the one beat schedule.

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The laptop default: messages are files under var/, no broker server needed.
    _queue_dir = VAR_DIR / "celery" / "queue"
    _processed_dir = VAR_DIR / "celery" / "processed"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(_processed_dir),
        "store_processed": False,
        # Broadcast/control messages (remote control, pidbox) would land in ./control otherwise.
        "control_folder": str(VAR_DIR / "celery" / "control"),
        # Look for new message files 5 times a second (kombu's 1 s default makes every step of a
        # provisioning chain wait up to a second before a worker sees it).
        "polling_interval": 0.2,
    }
else:
    # The visibility timeout must exceed the longest step (soft limit below) so that Redis does
    # not hand a still-running task to a second worker; retries and countdowns stay below it.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
# A task is acknowledged only after it ran, and a worker killed mid-task gives it back:
# provisioning steps are idempotent, losing one is worse than running it twice.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=1800)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=1900)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# The SapWaves are beat entries an operator edits in the admin (django-celery-beat's tables).
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# The portal's own periodic jobs (one beat runs; each job is idempotent anyway).
CELERY_BEAT_SCHEDULE = {
    # The reaper sends again the checklist turns whose worker died or whose message was lost (every
    # 15 s: such a step resumes within about a minute) and takes back attempts past their time limit.
    "provisioning-reap-steps": {"task": "provisioning.steps_reap",
                                "schedule": env.float("MAXPORTAL_STEP_REAP_SECONDS", default=15.0)},
    # The drift check reads every container from Proxmox and records what differs.
    "provisioning-drift-check": {
        "task": "provisioning.drift_check",
        "schedule": env.float("MAXPORTAL_DRIFT_CHECK_SECONDS", default=300.0),
    },
    # Idempotency-Key answers older than MAXPORTAL_IDEMPOTENCY_TTL_HOURS are forgotten.
    "kernel-idempotency-purge": {"task": "kernel.idempotency_purge", "schedule": 3600.0},
    # SapWaves' sweep: slots beat did not fire, answers, time-outs, the queue (see the SapWaves block).
    "sapwaves-sweep": {"task": "eidolons.sapwaves_sweep",
                       "schedule": env.float("MAXPORTAL_SAPWAVE_SWEEP_SECONDS", default=15.0)},
    # Stale agents: one ESCALATION per agent that went silent (see the SapWaves block).
    "agents-stale-check": {"task": "eidolons.agents_stale_check",
                           "schedule": env.float("MAXPORTAL_STALE_AGENTS_SECONDS", default=60.0)},
}

# === The agents' API =========================================================================
# Rate limit, size limits, idempotency and the one error renderer (maxportal/api.py).

# Requests per token (or staff user) per window; over it the API answers 429 with Retry-After.
MAXPORTAL_API_RATE_LIMIT = env.int("MAXPORTAL_API_RATE_LIMIT", default=1200)
MAXPORTAL_API_RATE_WINDOW = env.int("MAXPORTAL_API_RATE_WINDOW", default=60)
# The cache counts requests for the rate limit: Redis when set (needed with several web workers),
# else in-process memory.
MAXPORTAL_CACHE_URL = env.str("MAXPORTAL_CACHE_URL", default="")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": MAXPORTAL_CACHE_URL}
        if MAXPORTAL_CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
# Size limits: a JSON field (lead data, signal payload) and an uploaded artifact.
MAXPORTAL_API_MAX_JSON_BYTES = env.int("MAXPORTAL_API_MAX_JSON_BYTES", default=64 * 1024)
MAXPORTAL_ARTIFACT_MAX_BYTES = env.int("MAXPORTAL_ARTIFACT_MAX_BYTES", default=10 * 1024 * 1024)
# Idempotency-Key answers are kept this long (Stripe: 24 h); the hourly beat job forgets older ones.
MAXPORTAL_IDEMPOTENCY_TTL_HOURS = env.int("MAXPORTAL_IDEMPOTENCY_TTL_HOURS", default=24)
# The API root's one mapping of domain errors to (HTTP status, body); the kernel's idempotency
# stores refusals rendered by it, byte for byte what the API answers.
MAXPORTAL_API_ERROR_RENDERER = "maxportal.api.error_status_and_body"
# The Retry-After the API sends with 503 when the database could not serve a request in time.
MAXPORTAL_API_RETRY_AFTER_SECONDS = env.int("MAXPORTAL_API_RETRY_AFTER_SECONDS", default=2)

# === Signals and the inbox ===================================================================
# Delivery of signals to the Eidolons' agents: redelivery, long-poll, the YAML mirror, heartbeats.

# A delivered signal not acknowledged within this many seconds is delivered again.
MAXPORTAL_SIGNAL_VISIBILITY_TIMEOUT = env.int("MAXPORTAL_SIGNAL_VISIBILITY_TIMEOUT", default=300)
# Longest inbox long-poll (GET /api/v1/signals?wait=N) and how often a waiting poll looks at the
# database anyway: on PostgreSQL only a safety net (LISTEN/NOTIFY wakes it; a poll also looks when
# its wait ends), so the whole wait: 1,000 idle polls looking every 5 s cost 200 claims a second.
# On SQLite (no LISTEN) it is how a poll sees signals other processes wrote.
MAXPORTAL_SIGNAL_MAX_WAIT = env.int("MAXPORTAL_SIGNAL_MAX_WAIT", default=30)
MAXPORTAL_SIGNAL_POLL_INTERVAL = env.float("MAXPORTAL_SIGNAL_POLL_INTERVAL", default=30.0 if _ON_POSTGRESQL else 0.5)
# Async inbox polls do their database work in asgiref's shared thread pool (few threads, few
# connections, however many polls wait). Off: on each request's own thread, closed before waiting.
MAXPORTAL_INBOX_THREAD_POOL = env.bool("MAXPORTAL_INBOX_THREAD_POOL", default=True)
# When set, every signal is also written as a YAML file to <root>/<eidolon>_inbox/ (atomically)
# for the file-based daemons, e.g. /var/lib/vz/shared/signals/max-pipeline. Empty: off.
MAXPORTAL_SIGNAL_MIRROR_ROOT = env.str("MAXPORTAL_SIGNAL_MIRROR_ROOT", default="")
# A CLI agent whose last heartbeat is older than this is reported stale by /api/v1/agents/health.
MAXPORTAL_HEARTBEAT_STALE_SECONDS = env.int("MAXPORTAL_HEARTBEAT_STALE_SECONDS", default=180)

# === Leads and the MAX plan ==================================================================
# The pipeline's storage layout, who handles escalations, and the Eidolons' mailbox tenant.

# Artifacts live in default storage under <prefix>/<lead id>/stage-N-name/ (the synthesis's layout).
MAXPORTAL_PIPELINE_STORAGE_PREFIX = env.str("MAXPORTAL_PIPELINE_STORAGE_PREFIX", default="max-pipeline")
# The Eidolon whose inbox gets ESCALATION signals (the synthesis: Claude on the core Orchestra
# handles escalations); a human picks it up from the admin.
MAXPORTAL_ESCALATION_EIDOLON = env.str("MAXPORTAL_ESCALATION_EIDOLON", default="mach42v2")
# Mailboxes of Eidolons must live in one of these M365 tenant domains.
MAXPORTAL_MAILBOX_DOMAINS = env.list("MAXPORTAL_MAILBOX_DOMAINS", default=["meetmike.pro"])

# === Provisioning ============================================================================
# Host capacity, the Proxmox client and the local Proxmox, the checklist engine, in-container scripts.

# vCPUs may be committed up to this many times the host's threads (agents are thin clients).
MAXPORTAL_CPU_OVERCOMMIT_RATIO = env.float("MAXPORTAL_CPU_OVERCOMMIT_RATIO", default=2.0)
# The Proxmox API the loaded plan's host points at: the local (embedded) one on loopback.
MAXPORTAL_LOCAL_PROXMOX_URL = env.str("MAXPORTAL_LOCAL_PROXMOX_URL", default="https://127.0.0.1:8006")

# The Proxmox client: seconds per HTTP request (proxmoxer's 5 s default is too short for a busy node).
MAXPORTAL_PVE_TIMEOUT = env.float("MAXPORTAL_PVE_TIMEOUT", default=30.0)
# Connection errors, timeouts, 5xx and 595/596 are retried this many attempts in all, waiting
# base * 2**n seconds (at most max) between them; 4xx never are. Stays far below the visibility timeout.
MAXPORTAL_PVE_RETRY_ATTEMPTS = env.int("MAXPORTAL_PVE_RETRY_ATTEMPTS", default=4)
MAXPORTAL_PVE_RETRY_BASE_DELAY = env.float("MAXPORTAL_PVE_RETRY_BASE_DELAY", default=1.0)
MAXPORTAL_PVE_RETRY_MAX_DELAY = env.float("MAXPORTAL_PVE_RETRY_MAX_DELAY", default=10.0)
# Lines of a Proxmox task log kept with a step (the tail shows why a task failed).
MAXPORTAL_PVE_LOG_TAIL_LINES = env.int("MAXPORTAL_PVE_LOG_TAIL_LINES", default=30)
# Secrets named by a host (root_password_env) are read from that variable, else from the file of
# that name here. The local Proxmox writes its CA, token secret and root password here too.
MAXPORTAL_PVE_SECRETS_DIR = env.path("MAXPORTAL_PVE_SECRETS_DIR", default=VAR_DIR / "pve")
# Dotted path of the callable running `pct set` as root over SSH (root_channel=ssh):
# runner(host, vmid, **params) -> ExecResult (exit_code, output_tail, timed_out).
MAXPORTAL_PVE_SSH_ROOT_RUNNER = env.str(
    "MAXPORTAL_PVE_SSH_ROOT_RUNNER", default="provisioning.integrations.executors.factory.pct_set_as_root"
)
# The local Proxmox (manage.py local_proxmox): loopback port, and real seconds per Proxmox second
# (1: a create takes about 5 s, so progress is visible; 0: tasks end before the request returns).
MAXPORTAL_PVE_LOCAL_PORT = env.int("MAXPORTAL_PVE_LOCAL_PORT", default=8006)
MAXPORTAL_PVE_LOCAL_TIME_SCALE = env.float("MAXPORTAL_PVE_LOCAL_TIME_SCALE", default=1.0)

# The checklist engine: a step waiting on a Proxmox task or an acknowledgement looks again after
# this many seconds; the task ends its turn and re-sends itself instead of sleeping in the worker.
MAXPORTAL_STEP_POLL_SECONDS = env.float("MAXPORTAL_STEP_POLL_SECONDS", default=2.0)
# No countdown may reach the broker's visibility timeout (the message would be delivered twice).
MAXPORTAL_MAX_COUNTDOWN_SECONDS = env.float("MAXPORTAL_MAX_COUNTDOWN_SECONDS", default=300.0)
# Proxmox unreachable (595, timeouts) after the client's own retries: the step waits and asks again
# this many times, with doubling pauses, before it fails.
MAXPORTAL_STEP_UNAVAILABLE_RETRIES = env.int("MAXPORTAL_STEP_UNAVAILABLE_RETRIES", default=3)
# A claimed turn holds its attempt for this long, renewed every third of it while the turn runs (a
# script may run for many minutes): a killed worker's turn is taken over this soon after its death.
MAXPORTAL_STEP_LEASE_SECONDS = env.float("MAXPORTAL_STEP_LEASE_SECONDS", default=30.0)
# A sent turn's message may take this long to be picked up (a busy worker) before it counts as lost
# and is sent again by the reaper's sweep or the re-delivered previous message (duplicates are dropped).
MAXPORTAL_STEP_MESSAGE_GRACE_SECONDS = env.float("MAXPORTAL_STEP_MESSAGE_GRACE_SECONDS", default=30.0)

# In-container scripts: the repository the "repo cloned" step sparse-checks out into each
# Eidolon's workspace. No default: nothing here may reach the internet on its own; the script
# refuses to run while it is empty.
MAXPORTAL_AGENT_REPO_URL = env.str("MAXPORTAL_AGENT_REPO_URL", default="")
# The command run on the node for in-container work (`pct exec <vmid> -- bash -s`).
MAXPORTAL_PCT_COMMAND = env.str("MAXPORTAL_PCT_COMMAND", default="pct")
MAXPORTAL_SSH_CONNECT_TIMEOUT = env.float("MAXPORTAL_SSH_CONNECT_TIMEOUT", default=10.0)
# The SSH client gives up this long after a script's own limit (the node's `timeout` kills it first).
MAXPORTAL_SSH_TIMEOUT_GRACE = env.float("MAXPORTAL_SSH_TIMEOUT_GRACE", default=20.0)
MAXPORTAL_PCT_SET_TIMEOUT = env.float("MAXPORTAL_PCT_SET_TIMEOUT", default=60.0)
# The simulated executor (the local Proxmox has no real containers): real seconds per simulated
# second (0 in tests), and steps to fail on purpose ("step" or "<vmid>:step") to rehearse failures.
MAXPORTAL_SIMULATED_TIME_SCALE = env.float("MAXPORTAL_SIMULATED_TIME_SCALE", default=1.0)
MAXPORTAL_SIMULATED_FAILURES = env.list("MAXPORTAL_SIMULATED_FAILURES", default=[])

# --- SapWaves (eidolons/sapwaves/, issue 9) -------------------------------------------------------
# Self-contained on purpose: everything the SapWaves need, in one block.
# Edit history of the waves (django-simple-history).
INSTALLED_APPS = [*INSTALLED_APPS, "simple_history"]
# At most this many Eidolons hold an unanswered SapWave at once (the synthesis: "max 4-5 active").
MAXPORTAL_SAPWAVE_CAP = env.int("MAXPORTAL_SAPWAVE_CAP", default=4)
# A slot fired at most this many seconds after it is "on time"; later ones are "missed" and follow
# the wave's catch-up policy.
MAXPORTAL_SAPWAVE_ON_TIME_SECONDS = env.int("MAXPORTAL_SAPWAVE_ON_TIME_SECONDS", default=120)
# How far back a firing looks for missed slots (bounds the rows written after a long outage).
MAXPORTAL_SAPWAVE_LOOKBACK_HOURS = env.int("MAXPORTAL_SAPWAVE_LOOKBACK_HOURS", default=24)
# The sweep (beat entry "sapwaves-sweep", every MAXPORTAL_SAPWAVE_SWEEP_SECONDS, 15 s) catches slots
# beat did not fire, notices answers (TASK_RESPONSE), times out unanswered targets and sends waiting
# ones as places under the cap free up. It leaves a due slot to beat for this long before it fires it itself.
MAXPORTAL_SAPWAVE_SWEEP_GRACE_SECONDS = env.int("MAXPORTAL_SAPWAVE_SWEEP_GRACE_SECONDS", default=30)
# Stale agents (beat entry "agents-stale-check", every MAXPORTAL_STALE_AGENTS_SECONDS, 60 s): an agent
# silent past MAXPORTAL_HEARTBEAT_STALE_SECONDS raises one ESCALATION to MAXPORTAL_ESCALATION_EIDOLON
# per silence.
