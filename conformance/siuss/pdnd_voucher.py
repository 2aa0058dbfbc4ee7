#!/usr/bin/env python3
"""A stand-in for PDND's authorization server in the SIUSS conformance run.

    pdnd_voucher.py keys DIR            -> DIR/pdnd-key.pem (RSA 2048) and DIR/pdnd-jwks.json
    pdnd_voucher.py mint DIR ISS AUD CLIENT_ID PURPOSE_ID TTL  -> prints an RS256 voucher

The voucher has the claims PDND puts in one (iss, aud, client_id, sub, purposeId, jti, iat,
nbf, exp) and a `kid` header naming the key in the JWKS, so the hub verifies it exactly as it
verifies PDND's. Keys and signatures come from the openssl command line; nothing here is
cryptography of its own.
"""
import base64
import json
import os
import subprocess
import sys
import time
import uuid

KID = "pdnd-conformance-1"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def keys(d: str) -> None:
    key = os.path.join(d, "pdnd-key.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key],
                   check=True, capture_output=True)
    modulus = subprocess.run(["openssl", "rsa", "-in", key, "-noout", "-modulus"],
                             check=True, capture_output=True, text=True).stdout.strip().split("=", 1)[1]
    jwk = {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": KID,
           "n": b64url(bytes.fromhex(modulus)), "e": b64url((65537).to_bytes(3, "big"))}
    with open(os.path.join(d, "pdnd-jwks.json"), "w") as f:
        json.dump({"keys": [jwk]}, f)


def mint(d: str, iss: str, aud: str, client_id: str, purpose_id: str, ttl: int) -> str:
    now = int(time.time())
    header = {"alg": "RS256", "typ": "at+jwt", "kid": KID}
    claims = {"iss": iss, "aud": aud, "client_id": client_id, "sub": client_id, "purposeId": purpose_id,
              "jti": str(uuid.uuid4()), "iat": now, "nbf": now, "exp": now + ttl}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", os.path.join(d, "pdnd-key.pem")],
                         input=signing_input.encode(), check=True, capture_output=True).stdout
    return f"{signing_input}.{b64url(sig)}"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "keys":
        keys(sys.argv[2])
    elif len(sys.argv) == 8 and sys.argv[1] == "mint":
        print(mint(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], int(sys.argv[7])))
    else:
        sys.exit(__doc__)
