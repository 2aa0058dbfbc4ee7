"""Shared part of the two OpenID Providers (the profile, spid or cie, is set by the caller)."""
from .common import BASE_APPS, cookie_names, database
from sigess_peers import topology


def op_settings(role: str, profile: str) -> dict:
    return dict(
        ROLE=role,
        ENTITY_ID=topology.OP_IDS[role],
        INSTALLED_APPS=BASE_APPS + ["spid_cie_oidc.provider"],
        ROOT_URLCONF="sigess_peers.urls.op",
        DATABASES=database(role),
        # The package reads both names in different places.
        OIDCFED_PROVIDER_PROFILE=profile,
        OIDCFED_DEFAULT_PROVIDER_PROFILE=profile,
        # An RP is accepted only if its entity configuration carries this trust mark,
        # issued by the Trust Anchor.
        OIDCFED_REQUIRED_TRUST_MARKS=[topology.TM_RP_PUBLIC],
        OIDCFED_PROVIDER_SALT=f"sigess-conformance-{role}",
        LOGIN_URL="/oidc/op/authorization",
        **cookie_names(role),
    )
