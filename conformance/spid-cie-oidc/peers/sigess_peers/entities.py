"""Keys and metadata of the peers' own entity configurations."""
from cryptojwt.jwk.rsa import new_rsa_key
from django.conf import settings

from spid_cie_oidc.entity.jwks import public_jwk_from_private_jwk
from sigess_peers import topology

SPID_ACRS = [
    "https://www.spid.gov.it/SpidL1",
    "https://www.spid.gov.it/SpidL2",
    "https://www.spid.gov.it/SpidL3",
]
SIGNING_ALGS = ["RS256", "RS512", "ES256", "ES512"]
JWE_ALGS = ["RSA-OAEP", "RSA-OAEP-256"]
JWE_ENCS = ["A128CBC-HS256", "A256CBC-HS512"]


def new_private_jwk(use: str = "") -> dict:
    key = new_rsa_key(key_size=2048)
    jwk = key.serialize(private=True)
    jwk["kid"] = key.thumbprint("SHA-256").decode()
    if use:
        jwk["use"] = use
    return jwk


def public_jwks(private_jwks: list) -> list:
    return [public_jwk_from_private_jwk(k) for k in private_jwks]


def federation_entity_md(name: str, home: str, entity_id: str) -> dict:
    return {
        "organization_name": name,
        "homepage_uri": home,
        "policy_uri": home + "policy",
        "logo_uri": home + "logo.svg",
        "contacts": ["conformance@sigess.invalid"],
        "federation_resolve_endpoint": entity_id + "resolve",
    }


def ta_metadata() -> dict:
    ta = topology.TA_ID
    md = federation_entity_md("SIGeSS conformance Trust Anchor", ta, ta)
    md.update(
        {
            "federation_fetch_endpoint": ta + "fetch",
            "federation_list_endpoint": ta + "list",
            "federation_trust_mark_status_endpoint": ta + "trust_mark_status",
        }
    )
    return {"federation_entity": md}


def op_metadata(entity_id: str, profile: str, core_private: list) -> dict:
    op = entity_id
    name = f"SIGeSS conformance {profile.upper()} OP"
    scopes = ["openid", "offline_access"]
    claims = [
        "given_name",
        "family_name",
        "email",
        "birthdate",
        "place_of_birth",
        "gender",
        "https://attributes.eid.gov.it/fiscal_number",
    ]
    if profile == "cie":
        scopes += ["profile", "email"]
        claims += ["email_verified", "phone_number"]
    md = {
        "issuer": op,
        "organization_name": name,
        "authorization_endpoint": op + "authorization",
        "token_endpoint": op + "token",
        "userinfo_endpoint": op + "userinfo",
        "introspection_endpoint": op + "introspection",
        "revocation_endpoint": op + "revocation",
        "jwks": {"keys": public_jwks(core_private)},
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "acr_values_supported": SPID_ACRS,
        "subject_types_supported": ["pairwise"],
        "claims_supported": claims,
        "claims_parameter_supported": True,
        "request_parameter_supported": True,
        "authorization_response_iss_parameter_supported": True,
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": SIGNING_ALGS,
        "id_token_signing_alg_values_supported": SIGNING_ALGS,
        "id_token_encryption_alg_values_supported": JWE_ALGS,
        "id_token_encryption_enc_values_supported": JWE_ENCS,
        "userinfo_signing_alg_values_supported": SIGNING_ALGS,
        "userinfo_encryption_alg_values_supported": JWE_ALGS,
        "userinfo_encryption_enc_values_supported": JWE_ENCS,
        "request_object_signing_alg_values_supported": SIGNING_ALGS,
        "request_object_encryption_alg_values_supported": JWE_ALGS,
        "request_object_encryption_enc_values_supported": JWE_ENCS,
    }
    if profile == "spid":
        md["op_name"] = name
        md["op_uri"] = topology.base_url(settings.ROLE)
    return {
        "federation_entity": federation_entity_md(name, topology.base_url(settings.ROLE), op),
        "openid_provider": md,
    }


def rp_metadata(entity_id: str, core_private: list) -> dict:
    rp = entity_id
    name = "spid-cie-oidc reference RP"
    return {
        "federation_entity": federation_entity_md(name, rp, rp),
        "openid_relying_party": {
            "application_type": "web",
            "client_id": rp,
            "client_registration_types": ["automatic"],
            "client_name": name,
            "organization_name": name,
            "contacts": ["conformance@sigess.invalid"],
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": [rp + "callback"],
            "response_types": ["code"],
            "subject_type": "pairwise",
            "token_endpoint_auth_method": "private_key_jwt",
            "id_token_signed_response_alg": "RS256",
            "userinfo_signed_response_alg": "RS256",
            "userinfo_encrypted_response_alg": "RSA-OAEP",
            "userinfo_encrypted_response_enc": "A256CBC-HS512",
            "jwks": {"keys": public_jwks(core_private)},
        },
    }
