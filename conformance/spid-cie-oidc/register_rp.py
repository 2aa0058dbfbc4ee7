#!/usr/bin/env python3
"""Register a Relying Party as a federation descendant of the local Trust Anchor.

    .venv/bin/python register_rp.py [--entity-id URL] [--jwks FILE|URL] [--ec-url URL]

--entity-id defaults to $SIGESS_RP_URL. The RP's public *federation* keys are taken from
--jwks (a file or URL holding {"keys": [...]}) or, by default, from the RP's own entity
configuration at <entity-id>.well-known/openid-federation (its self-signature is checked).

The TA then issues the trust mark <TA>/openid_relying_party/public/ for the RP. The trust
marks are printed (JSON list), written to state/trust-marks/<slug>.json and served by the
TA at <TA>/sigess/trust_marks?sub=<entity-id>: the RP must publish them unchanged in the
"trust_marks" claim of its entity configuration, because the OPs require that mark.
Finally the OPs forget any trust chain they cached for the RP, so that new keys or
metadata are picked up at the next authorization request.
"""
import argparse
import json
import os
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
VENV_PY = HERE / ".venv" / "bin" / "python"

if pathlib.Path(sys.prefix).resolve() != (HERE / ".venv").resolve() and VENV_PY.exists():
    os.execv(str(VENV_PY), [str(VENV_PY), __file__, *sys.argv[1:]])

sys.path.insert(0, str(HERE / "peers"))

import requests  # noqa: E402
from cryptojwt.jwk.jwk import key_from_jwk_dict  # noqa: E402
from cryptojwt.jws.jws import JWS  # noqa: E402

from peerctl import manage, register  # noqa: E402
from sigess_peers import topology  # noqa: E402

WELL_KNOWN = ".well-known/openid-federation"


def _b64json(part: str) -> dict:
    import base64

    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def load_jwks(source: str) -> list:
    if source.startswith(("http://", "https://")):
        topology.require_loopback(source)
        data = requests.get(source, timeout=10).json()
    else:
        data = json.loads(pathlib.Path(source).read_text())
    keys = data.get("keys") if isinstance(data, dict) else data
    if not keys:
        raise SystemExit(f"no keys in {source}")
    return keys


def keys_from_entity_configuration(entity_id: str, ec_url: str) -> list:
    url = ec_url or entity_id.rstrip("/") + "/" + WELL_KNOWN
    topology.require_loopback(url)
    try:
        res = requests.get(url, timeout=10)
    except requests.RequestException as e:
        raise SystemExit(f"cannot fetch the entity configuration at {url}: {e} (is the RP running? or pass --jwks)")
    if res.status_code != 200:
        raise SystemExit(f"GET {url} -> HTTP {res.status_code}")
    jwt = res.text.strip()
    head, payload = _b64json(jwt.split(".")[0]), _b64json(jwt.split(".")[1])
    problems = []
    if head.get("typ") != "entity-statement+jwt":
        problems.append(f"header typ is {head.get('typ')!r}, the peers require 'entity-statement+jwt'")
    if not head.get("kid"):
        problems.append("header has no kid")
    for claim in ("iss", "sub"):
        if payload.get(claim) not in (entity_id, entity_id.rstrip("/")):
            problems.append(f"{claim} is {payload.get(claim)!r}, expected {entity_id!r}")
    keys = payload.get("jwks", {}).get("keys", [])
    if not keys:
        raise SystemExit("entity configuration has no jwks")
    key = next((k for k in keys if k.get("kid") == head.get("kid")), None)
    if key is None:
        problems.append("no key in jwks matches the header kid")
    else:
        try:
            JWS(alg=head["alg"]).verify_compact(jwt, [key_from_jwk_dict(key)])
        except Exception as e:  # noqa: BLE001
            problems.append(f"self-signature does not verify: {e}")
    if topology.TA_ID not in payload.get("authority_hints", []):
        problems.append(f"authority_hints {payload.get('authority_hints')} must contain {topology.TA_ID}")
    for p in problems:
        print(f"warning: {p}", file=sys.stderr)
    return keys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entity-id", default=topology.SIGESS_RP_ID)
    ap.add_argument("--jwks", default="", help="public federation JWKS (file or URL); default: from the EC")
    ap.add_argument("--ec-url", default="", help="entity configuration URL if not <entity-id>.well-known/...")
    ap.add_argument("--name", default="SIGeSS RP")
    ap.add_argument("--no-forget", action="store_true", help="keep the OPs' cached trust chains")
    a = ap.parse_args()

    entity_id = topology.require_loopback(a.entity_id)
    keys = load_jwks(a.jwks) if a.jwks else keys_from_entity_configuration(entity_id, a.ec_url)
    marks_file = register(entity_id, "openid_relying_party", json.dumps({"keys": keys}), name=a.name)
    if not a.no_forget:
        for role in topology.OP_IDS:
            if (topology.STATE_DIR / f"{role}.sqlite3").exists():
                manage(role, "peer_forget", "--sub", entity_id)
    print(pathlib.Path(marks_file).read_text())
    print(
        f"registered {entity_id} under {topology.TA_ID}; trust marks in {marks_file} and at "
        f"{topology.TA_ID}sigess/trust_marks?sub={entity_id}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
