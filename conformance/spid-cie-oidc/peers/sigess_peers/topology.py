"""Where every peer of the local federation lives.

Pure Python (no Django import) so that scripts and tests can share it.
Everything binds to 127.0.0.1; ports can be moved with environment variables.
"""
import ipaddress
import os
import pathlib
import urllib.parse

HOST = "127.0.0.1"

HERE = pathlib.Path(__file__).resolve().parent
HARNESS_DIR = HERE.parent.parent  # conformance/spid-cie-oidc
PEERS_DIR = HERE.parent  # conformance/spid-cie-oidc/peers
STATE_DIR = pathlib.Path(
    os.environ.get("SIGESS_PEERS_STATE", str(HARNESS_DIR / "state"))
).resolve()

PORTS = {
    "ta": int(os.environ.get("SIGESS_TA_PORT", "18000")),
    "rp_ref": int(os.environ.get("SIGESS_REF_RP_PORT", "18001")),
    "op_spid": int(os.environ.get("SIGESS_OP_SPID_PORT", "18002")),
    "op_cie": int(os.environ.get("SIGESS_OP_CIE_PORT", "18003")),
}

# Roles started by run-peers.sh (the reference RP is started by the tests only).
SERVER_ROLES = ("ta", "op_spid", "op_cie")
ALL_ROLES = SERVER_ROLES + ("rp_ref",)


def base_url(role: str) -> str:
    return f"http://{HOST}:{PORTS[role]}/"


TA_ID = base_url("ta")
OP_IDS = {
    "op_spid": base_url("op_spid") + "oidc/op/",
    "op_cie": base_url("op_cie") + "oidc/op/",
}
OP_SPID_ID = OP_IDS["op_spid"]
OP_CIE_ID = OP_IDS["op_cie"]
RP_REF_ID = base_url("rp_ref") + "oidc/rp/"

# Entity id of the RP under test (our Rust RP).
SIGESS_RP_ID = os.environ.get("SIGESS_RP_URL", "http://127.0.0.1:8080/oidc/rp/")

ENTITY_IDS = {"ta": TA_ID, "op_spid": OP_SPID_ID, "op_cie": OP_CIE_ID, "rp_ref": RP_REF_ID}

# Trust mark types issued by the Trust Anchor (same shape as the AgID registry ones:
# <registry>/openid_relying_party/public/).
TM_RP_PUBLIC = TA_ID + "openid_relying_party/public/"
TM_OP_PUBLIC = TA_ID + "openid_provider/public/"

# Fake test user known by both OPs.
TEST_USER = {
    "username": os.environ.get("SIGESS_TEST_USER", "mario.rossi"),
    "password": os.environ.get("SIGESS_TEST_PASSWORD", "conformance-only-password"),
    "fiscal_number": os.environ.get("SIGESS_TEST_FISCAL_NUMBER", "TINIT-RSSMRA80A01H501U"),
    "given_name": "Mario",
    "family_name": "Rossi",
    "email": "mario.rossi@example.org",
}


def is_loopback_url(url: str) -> bool:
    host = urllib.parse.urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_loopback(url: str) -> str:
    if not is_loopback_url(url):
        raise SystemExit(f"refusing non-loopback entity id {url!r}: this harness is loopback only")
    return url


def slug(url: str) -> str:
    p = urllib.parse.urlparse(url)
    raw = f"{p.hostname}_{p.port or 80}{p.path}"
    return "".join(c if c.isalnum() else "_" for c in raw).strip("_")
