"""The package's own reference Relying Party, used by the tests as a stand-in for our RP."""
from .common import *  # noqa: F401,F403
from .common import BASE_APPS, cookie_names, database
from sigess_peers import topology

ROLE = "rp_ref"
ENTITY_ID = topology.RP_REF_ID
INSTALLED_APPS = BASE_APPS + ["spid_cie_oidc.relying_party"]
ROOT_URLCONF = "sigess_peers.urls.rp"
DATABASES = database(ROLE)
globals().update(cookie_names(ROLE))
LOGIN_URL = "/oidc/rp/landing"
RP_DEFAULT_PROVIDER_PROFILES = "spid"
LOGIN_REDIRECT_URL = "/oidc/rp/echo_attributes"
LOGOUT_REDIRECT_URL = "/oidc/rp/landing"
