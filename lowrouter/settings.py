"""Settings for LowRouter, driven by environment variables.

With nothing set you get the embedded default: SQLite in ``data/``, a local-memory cache and
Celery tasks run eagerly. ``DATABASE_URL`` and ``REDIS_URL`` switch to PostgreSQL and Redis.
"""

import os
from decimal import Decimal, InvalidOperation
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()

BASE_DIR = Path(__file__).resolve().parent.parent
# The embedded database and collected static files live here. Nothing is created at import:
# the SQLite engine below makes the database's directory on first connect, collectstatic makes
# STATIC_ROOT.
DATA_DIR = Path(env.str("LOWROUTER_DATA_DIR", default=str(BASE_DIR / "data")))

DEBUG = env.bool("DEBUG", default=True)

_INSECURE_KEY = "django-insecure-embedded-default-do-not-use-in-production"
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = _INSECURE_KEY
elif not DEBUG and (SECRET_KEY == _INSECURE_KEY or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured("SECRET_KEY is too weak for production (50+ random characters).")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "rest_framework",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.github",
    "allauth.socialaccount.providers.google",
    "allauth.mfa",
    "django_countries",
    "eco",
    "catalog",
    "accounts",
    "keys",
    "billing",
    "routing",
    "docs_site",
    "devtools",
    "console",
    "site_pages",
]

MIDDLEWARE = [
    "routing.middleware.ApiErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "lowrouter.static.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "accounts.middleware.StaffTwoFactorMiddleware",
]

ROOT_URLCONF = "lowrouter.urls"
ASGI_APPLICATION = "lowrouter.asgi.application"

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

# --- Database -------------------------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Django's engine, plus the database directory made on first connect (lowrouter/sqlite3).
    DATABASES["default"]["ENGINE"] = "lowrouter.sqlite3"
    DATABASES["default"]["OPTIONS"] = {
        # IMMEDIATE takes the write lock at BEGIN, so concurrent writers queue on the busy
        # timeout instead of failing with "database is locked" half-way through a transaction.
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so server threads and processes in tests share it; named per test
    # run so concurrent runs on one machine never share a test database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-{os.getpid()}.sqlite3")}
else:
    # Under ASGI each sync view runs in a thread of its own, so a connection kept per thread
    # (CONN_MAX_AGE) was a new connection per request, left open after it: 20 parallel
    # requests left 34, until PostgreSQL refused clients. A pool per process bounds them:
    # a view takes a connection at its first query and gives it back when the request ends
    # (CONN_MAX_AGE=0, which the pool requires); past TIMEOUT seconds of waiting for one the
    # request gets a 503 database_unavailable. Measured against the old set-up in
    # docs/benchmarks.md ("Database connections of sync views"). The chat path's own
    # connections are separate: LOWROUTER_LOOP_DB_CONNECTIONS below.
    LOWROUTER_DB_POOL_SIZE = env.int("LOWROUTER_DB_POOL_SIZE", default=10)
    if LOWROUTER_DB_POOL_SIZE < 1:
        raise ImproperlyConfigured("LOWROUTER_DB_POOL_SIZE must be at least 1.")
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Django's backend, with pooled connections the server ended while idle (a restart) left
    # out: see lowrouter/postgresql/base.py.
    DATABASES["default"]["ENGINE"] = "lowrouter.postgresql"
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        "pool": {
            "name": "lowrouter",
            "min_size": min(2, LOWROUTER_DB_POOL_SIZE),
            "max_size": LOWROUTER_DB_POOL_SIZE,
            "timeout": env.float("LOWROUTER_DB_POOL_TIMEOUT", default=10.0),
            # Connections above min_size close after this long unused (what CONN_MAX_AGE was).
            "max_idle": env.float("LOWROUTER_DB_POOL_MAX_IDLE", default=60.0),
        },
    }
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, Redis and Celery ----------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            # Degrades to "nothing shared" while Redis is down (see lowrouter/cache.py).
            "BACKEND": "lowrouter.cache.ResilientRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="lr"),
            # A dead Redis must cost a request milliseconds, not the OS's TCP timeout.
            "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.25},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TIMEZONE = "UTC"
CELERY_TASK_IGNORE_RESULT = True
# The whole beat schedule, one place (times UTC).
CELERY_BEAT_SCHEDULE = {
    # The ECB publishes around 16:00 CET (15:00 UTC in winter, 14:00 in summer); 16:30 UTC is
    # after it all year. Then the catalogue file, remote price lists and due fee changes.
    "catalogue-daily-ingest": {
        "task": "catalog.daily_ingest",
        "schedule": crontab(minute=30, hour=16),
    },
    # Rates age out at day boundaries between ingests: re-check hourly so soft-disable is prompt.
    "fx-freshness-check": {"task": "catalog.fx_freshness_check", "schedule": crontab(minute=5)},
    # Holds of processes that died mid-request; requests never live 30 minutes.
    "release-orphaned-holds": {"task": "billing.release_orphaned_holds", "schedule": 300.0},
    # Refunds Stripe gave no clear answer to, resent within their idempotency key's lifetime.
    "retry-pending-refunds": {"task": "billing.retry_pending_refunds", "schedule": 300.0},
    # Balances that fell below their owner's alert threshold: one email per crossing.
    "send-low-balance-alerts": {"task": "billing.send_low_balance_alerts", "schedule": 300.0},
    # Last month's usage summary, on the 1st (runs every few hours so a missed run catches up).
    "send-monthly-summaries": {
        "task": "billing.send_monthly_summaries",
        "schedule": crontab(minute=30, hour="*/6", day_of_month="1-3"),
    },
}

# --- Auth -----------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
# OWASP ASVS: at least 12 characters, no low maximum, common and breached-looking ones refused.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "accounts.passwords.PredictablePasswordValidator"},
]
SITE_ID = 1
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
# Unverified accounts can sign in (and see why keys and top-ups wait for the verification).
ACCOUNT_EMAIL_VERIFICATION = "optional"
ACCOUNT_EMAIL_CONFIRMATION_EXPIRE_DAYS = 1
ACCOUNT_FORMS = {"signup": "accounts.forms.SignupForm"}
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_RATE_LIMITS = {
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
    "confirm_email": "1/3m/key",
    "resend_verification": "10/m/ip,1/3m/key",
}
ACCOUNT_UNIQUE_EMAIL = True
LOGIN_REDIRECT_URL = "/dashboard"
ACCOUNT_LOGOUT_REDIRECT_URL = "/"


def _oauth_app(prefix: str) -> dict[str, list[dict[str, str]]]:
    """The provider's OAuth client from ``<PREFIX>_CLIENT_ID``/``_SECRET``; none when unset
    (an operator can also add one as a "Social application" in the admin)."""
    client_id = env.str(f"{prefix}_CLIENT_ID", default="")
    secret = env.str(f"{prefix}_CLIENT_SECRET", default="")
    if bool(client_id) != bool(secret):
        raise ImproperlyConfigured(f"Set both {prefix}_CLIENT_ID and {prefix}_CLIENT_SECRET.")
    return {"APPS": [{"client_id": client_id, "secret": secret}]} if client_id else {}


# Federated sign-in: a provider's button shows only when its client is configured.
SOCIALACCOUNT_PROVIDERS = {
    "github": {"SCOPE": ["read:user", "user:email"], **_oauth_app("GITHUB")},
    "google": {"SCOPE": ["openid", "email", "profile"], **_oauth_app("GOOGLE")},
}
SOCIALACCOUNT_QUERY_EMAIL = True
# One email, one account: a provider login whose email matches an account signs in to that
# account and is connected to it. allauth only matches addresses the provider marks verified;
# an unverified one would let anyone who registers that address at a provider take over the
# account (and its balance), so it goes to the sign-up form instead, where the email is taken.
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
# New federated accounts always see the sign-up form: the country decides the VAT.
SOCIALACCOUNT_AUTO_SIGNUP = False
SOCIALACCOUNT_FORMS = {"signup": "accounts.forms.SocialSignupForm"}
# Provider tokens are not needed after sign-in; keeping them would only be a liability.
SOCIALACCOUNT_STORE_TOKENS = False

# Two-factor authentication: TOTP with recovery codes. Optional for customers, required for
# staff who can reach money actions in the admin (accounts/middleware.py).
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "LowRouter"

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="LowRouter <noreply@lowrouter.local>")
OPERATOR_EMAILS = env.list("OPERATOR_EMAILS", default=[])

# --- Security (strict when DEBUG is off) ----------------------------------------------------
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Static files, i18n ---------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
# In development and tests the files are served from where they live, no collectstatic needed.
WHITENOISE_USE_FINDERS = DEBUG
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging: never prompt or completion text, only request metadata -----------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # fpdf2 subsets the invoice font through fontTools, which logs every step at INFO.
        "fontTools": {"level": "WARNING"},
    },
}

# --- Gateway --------------------------------------------------------------------------------
# Encrypts provider credentials stored in the database (Fernet key, urlsafe base64, 32 bytes).
# Derived from SECRET_KEY when unset; set it explicitly to rotate SECRET_KEY independently.
LOWROUTER_CREDENTIALS_KEY = env.str("LOWROUTER_CREDENTIALS_KEY", default="")
LOWROUTER_MAX_BODY_BYTES = env.int("LOWROUTER_MAX_BODY_BYTES", default=4 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = LOWROUTER_MAX_BODY_BYTES
LOWROUTER_UPSTREAM_CONNECT_TIMEOUT = env.float("LOWROUTER_UPSTREAM_CONNECT_TIMEOUT", default=5.0)
# Time allowed for the upstream's first byte (headers); streams then get the idle timeout.
LOWROUTER_UPSTREAM_FIRST_BYTE_TIMEOUT = env.float(
    "LOWROUTER_UPSTREAM_FIRST_BYTE_TIMEOUT", default=60.0
)
LOWROUTER_UPSTREAM_IDLE_TIMEOUT = env.float("LOWROUTER_UPSTREAM_IDLE_TIMEOUT", default=60.0)
# How often a stream still being relayed renews its credit hold, so the orphan reaper (which
# frees holds untouched for 30 minutes, billing/spending.py) never frees a live one.
LOWROUTER_HOLD_RENEW_SECONDS = env.float("LOWROUTER_HOLD_RENEW_SECONDS", default=300.0)
if not 0 < LOWROUTER_HOLD_RENEW_SECONDS <= 600:
    raise ImproperlyConfigured("LOWROUTER_HOLD_RENEW_SECONDS must be in (0, 600].")
# PostgreSQL connections per worker process for the request path's statements, sent from the
# event loop (lowrouter/asyncdb.py); worker threads keep their own for everything else.
LOWROUTER_LOOP_DB_CONNECTIONS = env.int("LOWROUTER_LOOP_DB_CONNECTIONS", default=10)
LOWROUTER_CATALOGUE_FILE = env.str(
    "LOWROUTER_CATALOGUE_FILE", default=str(BASE_DIR / "catalog" / "default_catalogue.yaml")
)

# --- Money in: Stripe top-ups, VAT, invoices (billing/checkout.py, webhooks.py, vat.py) -----
# Test-mode or live secret key; empty disables top-ups (the page says so instead of failing).
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
# Signing secret of the webhook endpoint (whsec_...), used to verify Stripe-Signature.
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
# Stripe's API address; tests point it at a fake Stripe server on 127.0.0.1.
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com")
# Retries of a Stripe call that got no answer or a 409/5xx (same idempotency key each time).
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
# Bounds of one top-up in EUR of credits (net, VAT and fee excluded). Stripe's own minimum
# charge in EUR is 0.50, so the minimum can never go below it.
LOWROUTER_TOPUP_MIN_EUR = Decimal(env.str("LOWROUTER_TOPUP_MIN_EUR", default="5"))
LOWROUTER_TOPUP_MAX_EUR = Decimal(env.str("LOWROUTER_TOPUP_MAX_EUR", default="1000"))
if not (Decimal("0.50") <= LOWROUTER_TOPUP_MIN_EUR <= LOWROUTER_TOPUP_MAX_EUR):
    raise ImproperlyConfigured("Need 0.50 <= LOWROUTER_TOPUP_MIN_EUR <= LOWROUTER_TOPUP_MAX_EUR.")
# Flat payment-processing and platform fee added to every top-up, EUR, before VAT.
LOWROUTER_TOPUP_FEE_EUR = Decimal(env.str("LOWROUTER_TOPUP_FEE_EUR", default="0.80"))
# Days after a top-up during which unspent paid credit of it can be refunded (EU cooling-off).
LOWROUTER_REFUND_WINDOW_DAYS = env.int("LOWROUTER_REFUND_WINDOW_DAYS", default=14)
# VIES client (dotted path to a class with check(*, country, number) -> bool).
LOWROUTER_VIES_CHECKER = env.str("LOWROUTER_VIES_CHECKER", default="billing.vat.ViesRestChecker")
# The VIES REST API the default checker asks; tests point it at a fake VIES on 127.0.0.1.
LOWROUTER_VIES_URL = env.str(
    "LOWROUTER_VIES_URL", default="https://ec.europa.eu/taxation_customs/vies/rest-api"
)
# The model the console's eco panel replays an account's usage against (a model with verified
# parameters makes the comparison meaningful); the widget names it.
LOWROUTER_ECO_BASELINE_MODEL = env.str(
    "LOWROUTER_ECO_BASELINE_MODEL", default="scaleway/llama-3.3-70b-instruct"
)

# How long per-request records are kept (the daily aggregates are kept longer).
LOWROUTER_RECORD_RETENTION_MONTHS = env.int("LOWROUTER_RECORD_RETENTION_MONTHS", default=13)

# Invoices and the credit ledger are accounting records: kept this long whatever else is
# deleted (10 years: the French Code de commerce, art. L123-22, for the seller's books).
LOWROUTER_ACCOUNTING_RETENTION_YEARS = env.int("LOWROUTER_ACCOUNTING_RETENTION_YEARS", default=10)

# The operator's legal details: printed on every invoice (copied into it when issued) and on
# /impressum, /privacy and /terms. `check --deploy` fails while a required one is empty
# (billing/checks.py); the address and VAT number have no default on purpose.
LOWROUTER_SELLER = {
    "legal_name": env.str("LOWROUTER_SELLER_NAME", default="Carbonifer SAS"),
    "address": env.str("LOWROUTER_SELLER_ADDRESS", default=""),
    "country": "FR",
    "vat_number": env.str("LOWROUTER_SELLER_VAT_NUMBER", default=""),
    # Trade register entry, legal form and share capital, e.g. "SAS, RCS Paris 123 456 789".
    "registration": env.str("LOWROUTER_SELLER_REGISTRATION", default=""),
    "support_email": env.str("LOWROUTER_SUPPORT_EMAIL", default=""),
    # The person legally responsible for the site's content (directeur de la publication).
    "representative": env.str("LOWROUTER_SELLER_REPRESENTATIVE", default=""),
    # Who hosts the service: name and address, as the impressum must say.
    "host": env.str("LOWROUTER_HOST_DETAILS", default=""),
}

# --- Catalogue: ECB FX and daily price ingest (owned by the catalog app) ------------------
LOWROUTER_ECB_DAILY_URL = env.str(
    "LOWROUTER_ECB_DAILY_URL",
    default="https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml",
)
# Read on the first run and after a gap, so every missed business day gets its rate.
LOWROUTER_ECB_90D_URL = env.str(
    "LOWROUTER_ECB_90D_URL",
    default="https://www.ecb.europa.eu/stats/eurofxref/eurofxref-hist-90d.xml",
)
LOWROUTER_FX_FETCH_TIMEOUT = env.float("LOWROUTER_FX_FETCH_TIMEOUT", default=15.0)


def _fx_buffer_percent(raw: str) -> Decimal:
    # Refuse a non-number loudly at start-up; clamp a number into [0, 20] as documented.
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise ImproperlyConfigured(
            f"LOWROUTER_FX_BUFFER_PERCENT must be a number, got {raw!r}"
        ) from None
    if not value.is_finite():
        raise ImproperlyConfigured(f"LOWROUTER_FX_BUFFER_PERCENT must be finite, got {raw!r}")
    return min(max(value, Decimal("0")), Decimal("20"))


LOWROUTER_FX_BUFFER_PERCENT = _fx_buffer_percent(env.str("LOWROUTER_FX_BUFFER_PERCENT", "3.0"))
# Per-currency floor on the source-to-EUR rate, "USD=1.0,GBP=1.1". USD has the documented
# parity floor; CNY and others have none, since a parity floor on CNY (~0.13 EUR) would
# multiply its prices about sevenfold.
LOWROUTER_FX_FLOORS = env.dict("LOWROUTER_FX_FLOORS", default={"USD": "1.0"})
# A price change larger than this (percent, any component) waits for an operator's approval.
LOWROUTER_PRICE_APPROVAL_PERCENT = env.float("LOWROUTER_PRICE_APPROVAL_PERCENT", default=20.0)
# Notice period for platform fee increases; the seed docs promise at least 30 days.
LOWROUTER_FEE_NOTICE_DAYS = max(30, env.int("LOWROUTER_FEE_NOTICE_DAYS", default=30))

# --- Routing: scoring weights and upstream health (routing/scoring.py, routing/health.py) ---
# Scores are weighted sums of terms scaled 0..1 against the best candidate (lower is better);
# docs/routing.md explains each term. Price dominates for lowrouter/auto-cheap and sort=price,
# model size for lowrouter/auto, carbon gains weight with prefer_low_carbon.
LOWROUTER_ROUTING_WEIGHTS = {
    "price": env.float("LOWROUTER_ROUTING_W_PRICE", default=1.0),
    "price_dominant": env.float("LOWROUTER_ROUTING_W_PRICE_DOMINANT", default=20.0),
    "size": env.float("LOWROUTER_ROUTING_W_SIZE", default=20.0),
    "latency": env.float("LOWROUTER_ROUTING_W_LATENCY", default=0.5),
    "latency_dominant": env.float("LOWROUTER_ROUTING_W_LATENCY_DOMINANT", default=20.0),
    "carbon": env.float("LOWROUTER_ROUTING_W_CARBON", default=0.25),
    "carbon_preferred": env.float("LOWROUTER_ROUTING_W_CARBON_PREFERRED", default=5.0),
    "health": env.float("LOWROUTER_ROUTING_W_HEALTH", default=2.0),
    "preferred_region": env.float("LOWROUTER_ROUTING_W_PREFERRED_REGION", default=3.0),
    "provider_order": env.float("LOWROUTER_ROUTING_W_PROVIDER_ORDER", default=100.0),
    "high_grid": env.float("LOWROUTER_ROUTING_W_HIGH_GRID", default=5.0),
}
# Grid intensity (gCO2e/kWh) above which a region is deprioritised unless the caller pinned it.
LOWROUTER_ROUTING_HIGH_GRID_G_PER_KWH = env.float("LOWROUTER_ROUTING_HIGH_GRID", default=600.0)
# Candidates whose scores are within this percentage of the best are tied (sticky per user).
LOWROUTER_ROUTING_TIE_PERCENT = env.float("LOWROUTER_ROUTING_TIE_PERCENT", default=1.0)
# A failing (provider, region) slot is skipped for BASE seconds, doubling per consecutive
# failure up to MAX; its failures are forgotten DECAY seconds after the last one.
LOWROUTER_ROUTING_PENALTY_BASE_S = env.float("LOWROUTER_ROUTING_PENALTY_BASE_S", default=10.0)
LOWROUTER_ROUTING_PENALTY_MAX_S = env.float("LOWROUTER_ROUTING_PENALTY_MAX_S", default=300.0)
LOWROUTER_ROUTING_DECAY_S = env.float("LOWROUTER_ROUTING_DECAY_S", default=300.0)
# How long a process trusts its copy of the shared health state (0 = read it on every request).
LOWROUTER_ROUTING_HEALTH_REFRESH_S = env.float("LOWROUTER_ROUTING_HEALTH_REFRESH_S", default=0.5)
