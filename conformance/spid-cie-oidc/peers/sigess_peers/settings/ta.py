"""Trust Anchor: issues subordinate statements and trust marks for the OPs and RPs."""
from .common import *  # noqa: F401,F403
from .common import BASE_APPS, cookie_names, database
from sigess_peers import topology

ROLE = "ta"
ENTITY_ID = topology.TA_ID
INSTALLED_APPS = BASE_APPS + ["spid_cie_oidc.authority"]
ROOT_URLCONF = "sigess_peers.urls.ta"
DATABASES = database(ROLE)
globals().update(cookie_names(ROLE))
