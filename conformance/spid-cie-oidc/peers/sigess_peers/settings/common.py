"""Settings shared by every peer. Each role module imports * from here and then sets
ROLE, the apps it needs and its own URLconf."""
import os
import secrets

from sigess_peers import topology

STATE_DIR = topology.STATE_DIR
STATE_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    path = STATE_DIR / "django-secret-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = os.environ.get("SIGESS_PEERS_DEBUG", "0") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

BASE_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "spid_cie_oidc.accounts",
    "spid_cie_oidc.entity",
    "sigess_peers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [str(topology.HERE / "templates")],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

AUTH_USER_MODEL = "spid_cie_oidc_accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "Europe/Rome"
LANGUAGE_CODE = "en"
STATIC_URL = "/static/"

# Django's cookie jar is per host, not per port: every peer on 127.0.0.1 needs its own
# cookie names or the OP and the RP would overwrite each other's session.
def cookie_names(role: str) -> dict:
    return {
        "SESSION_COOKIE_NAME": f"sigess_{role}_session",
        "CSRF_COOKIE_NAME": f"sigess_{role}_csrf",
    }


def database(role: str) -> dict:
    return {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(STATE_DIR / f"{role}.sqlite3"),
            "OPTIONS": {"timeout": 20},
        }
    }


# Federation
OIDCFED_TRUST_ANCHORS = [topology.TA_ID]
OIDCFED_DEFAULT_TRUST_ANCHOR = topology.TA_ID
OIDCFED_IDENTITY_PROVIDERS = {
    "spid": {topology.OP_SPID_ID: topology.TA_ID},
    "cie": {topology.OP_CIE_ID: topology.TA_ID},
}
# Entity statements / configurations issued by our peers expire after this many minutes.
FEDERATION_DEFAULT_EXP = int(os.environ.get("SIGESS_FEDERATION_EXP_MINUTES", "120"))
HTTPC_TIMEOUT = 8

LOG_LEVEL = os.environ.get("SIGESS_PEERS_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "spid_cie_oidc": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "sigess_peers": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "django.request": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
